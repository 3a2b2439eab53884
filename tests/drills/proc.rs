//! The drills' processes: the `iari` binary they run, a child-process handle that is SIGKILLed
//! and reaped on drop (a failing drill leaves nothing running), and the bounded HTTP GET used for
//! `/readyz` and `/metrics`.

use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// The `iari` binary the drills run: this build's, or `IARI_DRILL_BIN` (a copy that another
/// build into a shared target directory cannot replace mid-run).
pub fn iari() -> String {
    std::env::var("IARI_DRILL_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_iari").to_string())
}

/// A child process, SIGKILLed and reaped on drop unless stopped before.
pub struct Proc {
    pub child: Child,
    /// Its name in failure messages, and the stem of its log file.
    pub name: String,
    /// The address it serves: a worker's HTTP, lis-sim's MLLP; empty for the publisher.
    pub addr: String,
}

impl Proc {
    /// SIGKILL now (no shutdown path runs: unacked deliveries and outbox leases are left behind).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then up to `secs` for a clean exit; true when it exited with success.
    pub fn stop(mut self, secs: u64) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Whether the process has exited, and how.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The raw HTTP/1.0 response to a GET, or None when nothing answers (bounded by a 5 s timeout).
pub async fn http_get(addr: &str, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let get = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        let req = format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).await.ok()?;
        Some(buf)
    };
    tokio::time::timeout(Duration::from_secs(5), get)
        .await
        .ok()
        .flatten()
}

/// Status code of a GET, or None when nothing answers.
pub async fn http_status(addr: &str, path: &str) -> Option<u16> {
    http_get(addr, path)
        .await?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
