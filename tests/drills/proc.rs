//! The drills' processes: the `iari` binary they run, a child-process handle that is SIGKILLed
//! and reaped on drop (a failing drill leaves nothing running), and the bounded HTTP GET used for
//! `/readyz` and `/metrics` (a failed scrape is an error, not zero).

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

/// A worker's `/metrics` text. A scrape that times out, fails or answers other than 200 is an
/// error, never an empty page: read as zero it would pass a check on a counter that moved.
pub async fn scrape(addr: &str) -> Result<String, String> {
    let raw = http_get(addr, "/metrics")
        .await
        .ok_or_else(|| format!("GET {addr}/metrics: no answer within 5 s"))?;
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("GET {addr}/metrics: not an HTTP response: {raw:?}"))?;
    match head.split_whitespace().nth(1) {
        Some("200") => Ok(body.to_string()),
        _ => Err(format!(
            "GET {addr}/metrics: {}",
            head.lines().next().unwrap_or(head)
        )),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that accepts and then answers `reply` (or nothing, holding the connection).
    async fn server(reply: Option<&'static str>) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            // Read the request first: closing with it unread would reset the connection.
            let mut req = Vec::new();
            while !req.ends_with(b"\r\n\r\n") {
                let mut b = [0u8; 256];
                let n = s.read(&mut b).await.unwrap();
                assert!(n > 0, "request cut short");
                req.extend_from_slice(&b[..n]);
            }
            match reply {
                Some(r) => s.write_all(r.as_bytes()).await.unwrap(),
                None => tokio::time::sleep(Duration::from_secs(30)).await,
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_scrape_that_times_out_or_fails_is_an_error_not_zero() {
        let silent = scrape(&server(None).await).await.unwrap_err();
        assert!(silent.contains("no answer within 5 s"), "{silent}");
        let failing = scrape(&server(Some("HTTP/1.0 500 Internal Server Error\r\n\r\n")).await)
            .await
            .unwrap_err();
        assert!(failing.contains("500"), "{failing}");
        let ok = "HTTP/1.0 200 OK\r\n\r\niari_captures_received_total 3\n";
        assert_eq!(
            scrape(&server(Some(ok)).await).await.unwrap(),
            "iari_captures_received_total 3\n"
        );
    }
}
