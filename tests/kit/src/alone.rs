//! A test alone in its own process, for exact counts of the product's process-wide metrics
//! registry (`iari::metrics::metrics()`): the tests of one binary run in parallel threads of
//! one process, so a counter's delta there is the sum over whichever tests ran meanwhile.
//!
//! The calling test re-runs itself as the only test of a child process of the same test
//! binary (`--exact`); the child runs the body, the parent only checks that the child passed.

use std::process::Command;

const CHILD: &str = "IARI_KIT_ALONE";

/// True in the child: run the test's body. In the parent, runs the test `name` (its path in the
/// binary, `module::test`; `module_path!()` and the function name) in a child process, panics
/// with the child's output when it fails or did not run exactly that test, and returns false.
pub fn in_own_process(module_path: &str, test: &str) -> bool {
    // `module_path!()` starts with the test binary's crate name, which the filter does not.
    let module = module_path.split_once("::").map_or("", |(_, m)| m);
    let name = if module.is_empty() {
        test.to_string()
    } else {
        format!("{module}::{test}")
    };
    if std::env::var(CHILD).as_deref() == Ok(name.as_str()) {
        return true;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new(exe)
        .args([name.as_str(), "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD, &name)
        .output()
        .expect("the test binary runs again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{name} in its own process: {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    false
}
