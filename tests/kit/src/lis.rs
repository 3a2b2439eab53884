//! The fake LIS of the tests: the product's own test LIS (`iari::deliver::lis_sim::LisSim`, the
//! server of `iari lis-sim`) on 127.0.0.1, answering by a script and keeping every message it
//! received; and LIS settings for a sender that talks to it.
//!
//! Its ACKs are texts written here, as an LIS writes them, never built by the product's own
//! reply builder: an ACK bug on both sides would cancel out.

use bytes::Bytes;
use iari::config::{LisProfile, LisSettings, LisTransport, Settings};
use iari::deliver::lis_sim::{self, LisSim, Replies};
use iari::deliver::reply::Received;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpListener;

/// What the fake LIS does with the next message it receives.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Answer with MSA-1 `code`, optional ERR-3 code, and MSA-3 text (plain text: no HL7
    /// delimiters), a v2.5.1 ACK as [`ack_text`] writes it.
    Ack(&'static str, Option<u16>, &'static str),
    /// First an ACK for someone else's message, then AA for ours.
    ForeignThenAa,
    /// Wait this long, then AA.
    DelayedAa(Duration),
    /// Say nothing, keep the connection open.
    Silence,
    /// Close the connection without answering.
    Drop,
    /// These ACK texts, in order, written by the test as some LIS writes them; `{id}` in each
    /// becomes the received MSH-10.
    Raw(Vec<&'static str>),
}

/// An ACK as a v2.5.1 LIS writes it: MSH, MSA (code, `{id}` for the acknowledged MSH-10, text)
/// and, with `error`, an ERR whose ERR-3 is that table 0357 code.
pub fn ack_text(code: &str, error: Option<u16>, text: &str) -> String {
    assert!(
        !text.contains(['|', '^', '~', '\\', '&', '\r']),
        "ACK text {text:?} must be plain"
    );
    let mut ack = format!(
        "MSH|^~\\&|LIS|HOSP|IARI|BB_LAB|20261126133005||ACK^R01^ACK|L{{id}}|P|2.5.1\rMSA|{code}|{{id}}|{text}\r"
    );
    if let Some(e) = error {
        ack.push_str(&format!("ERR|||{e}^^HL70357|E\r"));
    }
    ack
}

impl From<Reply> for lis_sim::Reply {
    fn from(r: Reply) -> lis_sim::Reply {
        let written = |delay, frames: Vec<String>| lis_sim::Reply::Written { delay, frames };
        match r {
            Reply::Ack(code, error, text) => {
                written(Duration::ZERO, vec![ack_text(code, error, text)])
            }
            Reply::ForeignThenAa => {
                let foreign = ack_text("AA", None, "").replace("|{id}|", "|NOT-OURS-1|");
                written(Duration::ZERO, vec![foreign, ack_text("AA", None, "")])
            }
            Reply::DelayedAa(delay) => written(delay, vec![ack_text("AA", None, "")]),
            Reply::Silence => lis_sim::Reply::Silence,
            Reply::Drop => lis_sim::Reply::Close,
            Reply::Raw(frames) => written(
                Duration::ZERO,
                frames.into_iter().map(String::from).collect(),
            ),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread poisons nothing the other threads cannot still read.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Answers each message by the next scripted reply (AA when the script is empty), keeping it.
struct Script {
    replies: Mutex<VecDeque<Reply>>,
    received: Arc<Mutex<Vec<Bytes>>>,
}

impl Replies for Script {
    fn reply(&self, _n: u64, frame: &[u8], _message: &Received) -> lis_sim::Reply {
        lock(&self.received).push(Bytes::copy_from_slice(frame));
        let next = lock(&self.replies).pop_front();
        next.unwrap_or(Reply::Ack("AA", None, "")).into()
    }
}

/// A fake LIS listening on 127.0.0.1; serves until the test's runtime ends.
#[derive(Clone)]
pub struct FakeLis {
    pub addr: String,
    received: Arc<Mutex<Vec<Bytes>>>,
}

impl FakeLis {
    /// On a free port.
    pub async fn start(script: Vec<Reply>) -> FakeLis {
        Self::start_at("127.0.0.1:0", script).await
    }

    /// On a given address (to bring an LIS back after an outage).
    pub async fn start_at(addr: &str, script: Vec<Reply>) -> FakeLis {
        Self::serve(addr, script, None).await
    }

    /// Like [`FakeLis::start`], speaking TLS with `acceptor`'s certificate.
    pub async fn start_tls(script: Vec<Reply>, acceptor: tokio_rustls::TlsAcceptor) -> FakeLis {
        Self::serve("127.0.0.1:0", script, Some(acceptor)).await
    }

    async fn serve(
        addr: &str,
        script: Vec<Reply>,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> FakeLis {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("fake LIS on {addr}: {e}"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let sim = Arc::new(LisSim::new(Script {
            replies: Mutex::new(script.into()),
            received: received.clone(),
        }));
        let lis = FakeLis {
            addr: listener.local_addr().expect("local address").to_string(),
            received,
        };
        tokio::spawn(sim.serve(listener, tls));
        lis
    }

    /// Every HL7 message received, in order.
    pub fn received(&self) -> Vec<Bytes> {
        lock(&self.received).clone()
    }

    /// MSH-10 of every received message, in order.
    pub fn control_ids(&self) -> Vec<String> {
        self.received().iter().map(|f| msh10(f)).collect()
    }
}

/// MSH-10 of an HL7 message, read by hand (not by the product's reader): the tenth field of
/// the first segment, whose field separator is MSH-1.
pub fn msh10(frame: &[u8]) -> String {
    let text = std::str::from_utf8(frame).expect("an HL7 message in UTF-8");
    let msh = text.split(['\r', '\n']).next().unwrap_or_default();
    assert!(msh.starts_with("MSH|"), "not an HL7 message: {text:?}");
    msh.split('|').nth(9).expect("MSH-10").to_string()
}

/// Default settings with an MLLP transport (ORU^R01) to `addr` and short test timeouts.
pub fn settings(addr: &str) -> LisSettings {
    let mut lis = Settings::load_from(None, Some(Default::default()))
        .expect("default settings")
        .lis;
    lis.transport = LisTransport::Mllp;
    lis.profile = LisProfile::OruR01;
    lis.addr = addr.to_string();
    lis.connect_timeout_ms = 500;
    lis.ack_timeout_ms = 1000;
    lis.app_ack_timeout_ms = 1000;
    lis.backoff_initial_ms = 10;
    lis.backoff_max_ms = 40;
    lis
}
