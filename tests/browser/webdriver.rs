//! A small W3C WebDriver client over plain HTTP/1.1 to a local chromedriver (no client crate:
//! the few calls the scenario needs). Every call has a deadline, so a stuck browser fails the
//! test instead of hanging it; chromedriver and Chromium are killed when the driver is dropped.

use serde_json::{Value, json};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// One WebDriver command's deadline (axe on a page takes the longest).
const CALL: Duration = Duration::from_secs(60);

pub struct Driver {
    addr: SocketAddr,
    session: String,
    process: Child,
    _profile: tempfile::TempDir,
}

/// A page element (its WebDriver reference).
#[derive(Debug, Clone)]
pub struct El(String);

async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, String> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // chromedriver keeps the connection open whatever the request says: read the head, then
    // exactly Content-Length bytes (or chunks up to the last one).
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16384];
        loop {
            let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
            buf.extend_from_slice(&chunk[..n]);
            if let Some(body) = complete(&buf) {
                return Ok::<_, String>(body);
            }
            if n == 0 {
                return Err("connection closed before the answer was complete".into());
            }
        }
    };
    let body = tokio::time::timeout(CALL, exchange)
        .await
        .map_err(|_| format!("WebDriver {method} {path}: no answer within {CALL:?}"))??;
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    match v["value"].get("error") {
        Some(err) => Err(format!(
            "WebDriver {method} {path}: {err}: {}",
            v["value"]["message"]
        )),
        None => Ok(v["value"].clone()),
    }
}

/// The body, once `buf` holds a whole HTTP answer.
fn complete(buf: &[u8]) -> Option<String> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let rest = &buf[end + 4..];
    if head.contains("transfer-encoding: chunked") {
        return dechunk(rest);
    }
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())?;
    (rest.len() >= len).then(|| String::from_utf8_lossy(&rest[..len]).into_owned())
}

/// The body of a chunked answer, once the last (empty) chunk has arrived.
fn dechunk(mut s: &[u8]) -> Option<String> {
    let mut out = Vec::new();
    loop {
        let line = s.windows(2).position(|w| w == b"\r\n")?;
        let n = usize::from_str_radix(String::from_utf8_lossy(&s[..line]).trim(), 16).ok()?;
        s = &s[line + 2..];
        if n == 0 {
            return Some(String::from_utf8_lossy(&out).into_owned());
        }
        if s.len() < n + 2 {
            return None;
        }
        out.extend_from_slice(&s[..n]);
        s = &s[n + 2..];
    }
}

impl Driver {
    /// Starts chromedriver on `port` and a headless Chromium session with a fresh profile.
    pub async fn start(port: u16) -> Result<Driver, String> {
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let process = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("chromedriver: {e} (scripts/install-browser.sh installs it)"))?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut driver = Driver {
            addr,
            session: String::new(),
            process,
            _profile: profile,
        };
        let ready = async {
            loop {
                if http(addr, "GET", "/status", None)
                    .await
                    .is_ok_and(|v| v["ready"] == true)
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(20), ready)
            .await
            .map_err(|_| "chromedriver did not start within 20 s".to_string())?;
        let profile_arg = format!("--user-data-dir={}", driver._profile.path().display());
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu",
                         "--disable-background-networking", "--disable-component-update",
                         "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", profile_arg]
            },
            "timeouts": {"script": 30000, "pageLoad": 30000, "implicit": 0}
        }}});
        let v = http(addr, "POST", "/session", Some(&caps)).await?;
        driver.session = v["sessionId"].as_str().ok_or("no session id")?.to_string();
        Ok(driver)
    }

    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let p = format!("/session/{}{path}", self.session);
        http(self.addr, method, &p, body.as_ref()).await
    }

    pub async fn goto(&self, url: &str) -> Result<(), String> {
        self.cmd("POST", "/url", Some(json!({"url": url})))
            .await
            .map(drop)
    }

    pub async fn url(&self) -> Result<String, String> {
        Ok(self
            .cmd("GET", "/url", None)
            .await?
            .as_str()
            .unwrap_or("")
            .to_string())
    }

    pub async fn find_all(&self, css: &str) -> Result<Vec<El>, String> {
        let v = self
            .cmd(
                "POST",
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(|s| El(s.into())))
                    .collect()
            })
            .unwrap_or_default())
    }

    pub async fn find(&self, css: &str) -> Result<El, String> {
        self.find_all(css)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| format!("no element matches {css}"))
    }

    /// Waits (polling, bounded by `within`) until `css` matches something.
    pub async fn wait_for(&self, css: &str, within: Duration) -> Result<El, String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(e) = self.find_all(css).await?.into_iter().next() {
                return Ok(e);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("{css} did not appear within {within:?}"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn click(&self, e: &El) -> Result<(), String> {
        self.cmd("POST", &format!("/element/{}/click", e.0), Some(json!({})))
            .await
            .map(drop)
    }

    pub async fn type_into(&self, e: &El, text: &str) -> Result<(), String> {
        self.cmd(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({"text": text})),
        )
        .await
        .map(drop)
    }

    pub async fn text(&self, e: &El) -> Result<String, String> {
        Ok(self
            .cmd("GET", &format!("/element/{}/text", e.0), None)
            .await?
            .as_str()
            .unwrap_or("")
            .to_string())
    }

    /// Presses and releases one key on whatever has focus.
    pub async fn press(&self, key: &str) -> Result<(), String> {
        let actions = json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
            {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]}]});
        self.cmd("POST", "/actions", Some(actions)).await.map(drop)
    }

    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value, String> {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    pub async fn execute_async(&self, script: &str) -> Result<Value, String> {
        self.cmd(
            "POST",
            "/execute/async",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Result<Vec<u8>, String> {
        use base64::Engine;
        let v = self.cmd("GET", "/screenshot", None).await?;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or(""))
            .map_err(|e| e.to_string())
    }

    /// A reference usable as an `execute` argument.
    pub fn arg(e: &El) -> Value {
        json!({ ELEMENT: e.0 })
    }

    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.cmd("DELETE", "", None)).await;
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // A failed test drops the driver without quit: chromedriver takes Chromium with it.
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
