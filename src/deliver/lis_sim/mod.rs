//! A test LIS over MLLP: answers every received HL7 message with what a [`Replies`] says (an ACK
//! built by `reply`, ACK texts written by the caller, silence, or a closed connection) and can
//! record one line per message. It is
//! the server of `iari lis-sim` (benchmarks, fault drills, site acceptance) and the tests' fake
//! LIS, so both speak the same protocol; the fault plan of the command is in [`faults`].

pub mod faults;

use super::ack::AckCode;
use super::mllp::MllpCodec;
use super::reply::{self, Received};
use futures::{SinkExt, StreamExt};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

pub use faults::{FaultPlan, Faults};

/// One ACK the LIS sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckReply {
    /// MSA-1.
    pub code: AckCode,
    /// ERR-3 code (table 0357), when the ACK carries an ERR segment.
    pub error: Option<u16>,
    /// MSA-3.
    pub text: String,
    /// MSA-2 naming another message instead of the received one (a stray ACK).
    pub other_control_id: Option<String>,
}

impl AckReply {
    pub fn new(code: AckCode, error: Option<u16>, text: &str) -> AckReply {
        AckReply {
            code,
            error,
            text: text.to_string(),
            other_control_id: None,
        }
    }

    /// AA with no text.
    pub fn aa() -> AckReply {
        AckReply::new(AckCode::AA, None, "")
    }
}

/// What the LIS does with one received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Waits `delay`, then sends `acks` in order on the connection (the last one is the answer
    /// that counts; earlier ones are what a confused LIS might send first).
    Answer {
        delay: Duration,
        acks: Vec<AckReply>,
    },
    /// Waits `delay`, then sends `frames` as they are, `{id}` in each replaced by the received
    /// MSH-10: ACKs as a particular LIS writes them, so that what iari reads is checked against
    /// texts its own builder did not write.
    Written {
        delay: Duration,
        frames: Vec<String>,
    },
    /// Says nothing; the connection stays open.
    Silence,
    /// Closes the connection without answering.
    Close,
}

impl Reply {
    /// One ACK, at once.
    pub fn ack(ack: AckReply) -> Reply {
        Reply::Answer {
            delay: Duration::ZERO,
            acks: vec![ack],
        }
    }

    /// What the record file says the answer was: the last ACK's code, or `-` for none (or for
    /// a written ACK whose MSA-1 is no ACK code).
    fn recorded(&self) -> &'static str {
        match self {
            Reply::Answer { acks, .. } => acks.last().map_or("-", |a| a.code.as_str()),
            Reply::Written { frames, .. } => frames
                .last()
                .and_then(|f| super::ack::parse(f.as_bytes()).ok())
                .map_or("-", |a| a.code.as_str()),
            Reply::Silence | Reply::Close => "-",
        }
    }
}

/// Decides the answer to each message: `n` counts received HL7 messages from 1 (resends count),
/// `frame` is the message as received.
pub trait Replies: Send + Sync + 'static {
    fn reply(&self, n: u64, frame: &[u8], message: &Received) -> Reply;
}

impl<F> Replies for F
where
    F: Fn(u64, &[u8], &Received) -> Reply + Send + Sync + 'static,
{
    fn reply(&self, n: u64, frame: &[u8], message: &Received) -> Reply {
        self(n, frame, message)
    }
}

/// The LIS: shared by all its connections.
pub struct LisSim {
    replies: Box<dyn Replies>,
    received: AtomicU64,
    record: Option<Mutex<std::fs::File>>,
    max_frame_bytes: usize,
}

impl LisSim {
    pub fn new(replies: impl Replies) -> LisSim {
        LisSim {
            replies: Box::new(replies),
            received: AtomicU64::new(0),
            record: None,
            max_frame_bytes: 1 << 20,
        }
    }

    /// Appends one tab-separated line per received message to `file` (opened for append):
    /// receive time (unix ms), MSH-10, PID-3.1, OBR-2.1, OBR-3.1, and the answer (the ACK code,
    /// or `-` for none).
    pub fn record_to(mut self, file: std::fs::File) -> LisSim {
        self.record = Some(Mutex::new(file));
        self
    }

    /// Largest frame accepted, in bytes (1 MiB by default).
    pub fn max_frame_bytes(mut self, n: usize) -> LisSim {
        self.max_frame_bytes = n;
        self
    }

    /// HL7 messages received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Accepts connections on `listener` until the future is dropped, each served on its own
    /// task; with `tls`, each connection is a TLS handshake first (one that fails is dropped).
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) {
        loop {
            let (sock, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            tracing::info!(%peer, "LIS connection");
            let _ = sock.set_nodelay(true);
            let me = self.clone();
            match tls.clone() {
                None => drop(tokio::spawn(me.connection(sock))),
                Some(acceptor) => drop(tokio::spawn(async move {
                    match acceptor.accept(sock).await {
                        Ok(stream) => me.connection(stream).await,
                        // A client that rejects our certificate ends the handshake.
                        Err(e) => tracing::warn!(error = %e, "TLS handshake failed"),
                    }
                })),
            }
        }
    }

    /// Serves one connection until the peer closes it, a read fails, or a reply closes it.
    pub async fn connection<S: AsyncRead + AsyncWrite + Unpin>(self: Arc<Self>, stream: S) {
        let mut conn = Framed::new(stream, MllpCodec::new(self.max_frame_bytes));
        while let Some(frame) = conn.next().await {
            let frame = match frame {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(error = %e, "MLLP read failed; closing the connection");
                    return;
                }
            };
            let at = chrono::Utc::now();
            let received = match reply::read(&frame) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "not an HL7 message; no answer");
                    continue;
                }
            };
            let n = self.received.fetch_add(1, Ordering::Relaxed) + 1;
            let answer = self.replies.reply(n, &frame, &received);
            if let Err(e) = self.record(at.timestamp_millis(), &received, &answer) {
                tracing::error!(error = %e, "cannot write the record file");
            }
            let (delay, frames) = match answer {
                Reply::Answer { delay, acks } => (delay, built(&received, n, &acks, at)),
                Reply::Written { delay, frames } => {
                    let id = &received.control_id;
                    (
                        delay,
                        frames.iter().map(|f| f.replace("{id}", id)).collect(),
                    )
                }
                Reply::Silence => continue,
                Reply::Close => return,
            };
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            for ack in frames {
                if let Err(e) = conn.send(ack).await {
                    tracing::warn!(error = %e, "cannot send the ACK; closing the connection");
                    return;
                }
            }
        }
    }

    fn record(&self, at_ms: i64, r: &Received, answer: &Reply) -> std::io::Result<()> {
        let Some(file) = &self.record else {
            return Ok(());
        };
        let line = format!(
            "{at_ms}\t{}\t{}\t{}\t{}\t{}\n",
            r.control_id,
            r.patient_id,
            r.placer,
            r.filler,
            answer.recorded()
        );
        // One write per line on an O_APPEND file: readers never see half a line.
        file.lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(line.as_bytes())
    }
}

/// The ACK texts for `acks`, answering message number `n` received at `at`.
fn built(
    to: &Received,
    n: u64,
    acks: &[AckReply],
    at: chrono::DateTime<chrono::Utc>,
) -> Vec<String> {
    let mut out = Vec::with_capacity(acks.len());
    for (i, a) in acks.iter().enumerate() {
        let mut to = to.clone();
        if let Some(other) = &a.other_control_id {
            to.control_id.clone_from(other);
        }
        // The ACK's own MSH-10: `SIM<n>`, and `-2`, `-3` for further ACKs to one message.
        let id = match i {
            0 => format!("SIM{n}"),
            _ => format!("SIM{n}-{}", i + 1),
        };
        out.push(reply::build(&to, a.code, a.error, &a.text, &id, at));
    }
    out
}
