//! The review workstation against a real PostgreSQL: every route × role (401, 403, 200),
//! CSRF refusals, lock-out, idle and absolute timeouts, signing (wrong password refused and
//! counted, a disabled account cannot sign), the security headers, `iari users`, and the HTTP
//! server's bounds (its own pool, statement and request timeouts, concurrency limit).
//! The browser test of the same pages is its own binary (`tests/browser`).

#[path = "../audit/common.rs"]
#[allow(dead_code, unused_imports)]
mod common;

mod client;
mod least_privilege;
mod limits;
mod plate_qc;
mod retract;
mod roles;
mod sessions;
mod signing;
mod users_cli;
