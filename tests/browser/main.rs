//! The workstation in a real browser: Debian's headless Chromium driven over WebDriver
//! (`webdriver`), against `iari serve`'s tasks (the workstation and the HL7 sender, started by
//! `app::App`) on a real PostgreSQL and a fake LIS. axe-core (vendored, hash-checked) runs on
//! every page: no serious or critical violation. Screenshots of every page go to
//! `target/screenshots/` (`IARI_SCREENSHOTS=docs/screenshots` refreshes the documented ones).
//! `scripts/install-browser.sh` installs Chromium and chromedriver (`make browser`).

#[path = "../audit/common.rs"]
#[allow(dead_code, unused_imports)]
mod common;
mod lis {
    pub use iari_kit::lis::{FakeLis, settings as lis_settings};
}
mod ports {
    pub use iari_kit::ports::free_port;
}
mod webdriver;

mod scenario;
