//! The fake LIS of the tests: the product's own test LIS (`iari::deliver::lis_sim::LisSim`, the
//! server of `iari lis-sim`) on 127.0.0.1, answering by a script and keeping every message it
//! received; and LIS settings for a sender that talks to it.

use bytes::Bytes;
use iari::config::{LisProfile, LisSettings, LisTransport, Settings};
use iari::deliver::ack::AckCode;
use iari::deliver::lis_sim::{self, AckReply, LisSim, Replies};
use iari::deliver::reply::Received;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpListener;

/// What the fake LIS does with the next message it receives.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Answer with MSA-1 `code`, optional ERR-3 code, and MSA-3 text.
    Ack(&'static str, Option<u16>, &'static str),
    /// First an ACK for someone else's message, then AA for ours.
    ForeignThenAa,
    /// Wait this long, then AA.
    DelayedAa(Duration),
    /// Say nothing, keep the connection open.
    Silence,
    /// Close the connection without answering.
    Drop,
}

impl From<Reply> for lis_sim::Reply {
    fn from(r: Reply) -> lis_sim::Reply {
        match r {
            Reply::Ack(code, error, text) => {
                let code = AckCode::parse(code).unwrap_or_else(|| panic!("ACK code {code}"));
                lis_sim::Reply::ack(AckReply::new(code, error, text))
            }
            Reply::ForeignThenAa => {
                let foreign = AckReply {
                    other_control_id: Some("NOT-OURS-1".into()),
                    ..AckReply::aa()
                };
                lis_sim::Reply::Answer {
                    delay: Duration::ZERO,
                    acks: vec![foreign, AckReply::aa()],
                }
            }
            Reply::DelayedAa(delay) => lis_sim::Reply::Answer {
                delay,
                acks: vec![AckReply::aa()],
            },
            Reply::Silence => lis_sim::Reply::Silence,
            Reply::Drop => lis_sim::Reply::Close,
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

/// MSH-10 of an HL7 message, read as the LIS reads it.
pub fn msh10(frame: &[u8]) -> String {
    iari::deliver::reply::read(frame)
        .expect("an HL7 message")
        .control_id
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
    lis.backoff_initial_ms = 10;
    lis.backoff_max_ms = 40;
    lis
}
