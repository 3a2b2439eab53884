//! Shared helpers: a fresh database per test, seeded decisions and outbox rows, test settings,
//! and a scriptable fake LIS (an MLLP listener on 127.0.0.1:0).

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use iari::config::{LisProfile, LisSettings, LisTransport, Settings};
use iari::deliver::mllp::MllpCodec;
use sqlx::PgPool;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

pub use crate::models::MODEL_NAMES;

pub async fn fresh_db() -> PgPool {
    crate::test_db::create("iari_test_deliver", 8).await.0
}

/// Default settings with an MLLP transport to `addr` and short test timeouts.
pub fn lis_settings(addr: &str) -> LisSettings {
    let mut lis = Settings::load_from(None, Some(Default::default()))
        .unwrap()
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

/// One capture + decision, and its outbox row (as the worker writes it). Returns the decision id.
pub async fn seed_decision(
    pool: &PgPool,
    capture: &str,
    grade: &str,
    votes: [&str; 5],
    needs_review: bool,
) -> i64 {
    let bytes = capture.as_bytes().to_vec();
    let sha: Vec<u8> = sha2_of(&bytes);
    sqlx::query("INSERT INTO images (sha256, media_type, width, height, bytes) VALUES ($1, 'image/png', 1, 1, $2) ON CONFLICT DO NOTHING")
        .bind(&sha)
        .bind(&bytes)
        .execute(pool)
        .await
        .unwrap();
    let event = serde_json::json!({
        "schema": "iari.capture.v1", "capture_id": capture,
        "patient": {"mrn": "MRN12345", "family": "DOE", "given": "JANE", "birth_date": "1980-01-01", "sex": "F"},
        "order": {"placer_order_number": "PLC123"}
    });
    sqlx::query("INSERT INTO captures (capture_id, image_sha256, event, captured_at, analyzer_id, plate_id, well, accession) \
                 VALUES ($1, $2, $3, '2026-11-26T13:00:00Z', 'HCM-01', 'PLT1', 'A1', 'S26-1')")
        .bind(capture)
        .bind(&sha)
        .bind(event)
        .execute(pool)
        .await
        .unwrap();
    let models: Vec<_> = MODEL_NAMES
        .iter()
        .zip(votes)
        .map(|(n, v)| serde_json::json!({"name": n, "version": "1.0.0", "sha256": "00", "status": "voted", "vote": v}))
        .collect();
    let agreement = votes.iter().filter(|v| **v == grade).count() as f32 / 5.0;
    let flags: Vec<String> = if needs_review {
        vec!["disagree_adjacent".into()]
    } else {
        vec![]
    };
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO decisions (capture_id, image_sha256, grade, agreement, confidence, flags, needs_review, \
           ensemble_name, ensemble_version, models, runtime, timings, worker) \
         VALUES ($1, $2, $3, $4, 0.9, $5, $6, 'iari', 'ENS-1.0.0', $7, '{}', '{}', '{}') RETURNING id",
    )
    .bind(capture)
    .bind(&sha)
    .bind(grade)
    .bind(agreement)
    .bind(&flags)
    .bind(needs_review)
    .bind(serde_json::Value::Array(models))
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO hl7_messages (decision_id, filler_number, result_status) VALUES ($1, $2, $3)",
    )
    .bind(id)
    .bind(format!("D{id:07}"))
    .bind(if needs_review { "P" } else { "F" })
    .execute(pool)
    .await
    .unwrap();
    id
}

/// A review of decision `id` and its outbox row (as the audit path writes it).
pub async fn seed_review(pool: &PgPool, id: i64, grade: &str, status: &str) -> i64 {
    let rid: i64 = sqlx::query_scalar("INSERT INTO reviews (decision_id, grade, reviewer, comment) VALUES ($1, $2, 'Dr. Müller', 'checked\nunder microscope') RETURNING id")
        .bind(id)
        .bind(grade)
        .fetch_one(pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO hl7_messages (decision_id, review_id, filler_number, result_status) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(rid)
        .bind(format!("D{id:07}"))
        .bind(status)
        .execute(pool)
        .await
        .unwrap();
    rid
}

fn sha2_of(b: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(b).to_vec()
}

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
    /// These frames, written by hand (not by the product's ACK builder), in order; `{id}` in
    /// each becomes the received MSH-10.
    Raw(Vec<&'static str>),
}

/// A fake LIS: answers each received frame by the next scripted [`Reply`] (AA when the script
/// is empty) and records every frame it received, in order.
#[derive(Clone)]
pub struct FakeLis {
    pub addr: String,
    pub received: Arc<Mutex<Vec<Bytes>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
}

impl FakeLis {
    pub async fn start(script: Vec<Reply>) -> FakeLis {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, script)
    }

    /// Listens on a given address (to bring an LIS back after an outage).
    pub async fn start_at(addr: &str, script: Vec<Reply>) -> FakeLis {
        Self::serve(TcpListener::bind(addr).await.unwrap(), script)
    }

    fn serve(listener: TcpListener, script: Vec<Reply>) -> FakeLis {
        let lis = FakeLis {
            addr: listener.local_addr().unwrap().to_string(),
            received: Arc::default(),
            script: Arc::new(Mutex::new(script.into())),
        };
        let me = lis.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(
                    me.clone()
                        .connection(Framed::new(sock, MllpCodec::new(1 << 20))),
                );
            }
        });
        lis
    }

    /// Like [`FakeLis::start`], speaking TLS with `acceptor`'s certificate.
    pub async fn start_tls(acceptor: tokio_rustls::TlsAcceptor) -> FakeLis {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let lis = FakeLis {
            addr: listener.local_addr().unwrap().to_string(),
            received: Arc::default(),
            script: Arc::default(),
        };
        let me = lis.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (me, acceptor) = (me.clone(), acceptor.clone());
                tokio::spawn(async move {
                    // A client that rejects our certificate ends the handshake: nothing to serve.
                    if let Ok(tls) = acceptor.accept(sock).await {
                        me.connection(Framed::new(tls, MllpCodec::new(1 << 20)))
                            .await;
                    }
                });
            }
        });
        lis
    }

    async fn connection<S: AsyncRead + AsyncWrite + Unpin>(self, mut conn: Framed<S, MllpCodec>) {
        while let Some(Ok(frame)) = conn.next().await {
            self.received.lock().unwrap().push(frame.clone());
            let reply = self
                .script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Reply::Ack("AA", None, ""));
            match reply {
                Reply::Ack(code, err, text) => {
                    let _ = conn.send(ack(&frame, code, None, err, text)).await;
                }
                Reply::ForeignThenAa => {
                    let _ = conn
                        .send(ack(&frame, "AA", Some("NOT-OURS-1"), None, ""))
                        .await;
                    let _ = conn.send(ack(&frame, "AA", None, None, "")).await;
                }
                Reply::DelayedAa(d) => {
                    tokio::time::sleep(d).await;
                    let _ = conn.send(ack(&frame, "AA", None, None, "")).await;
                }
                Reply::Silence => {}
                Reply::Drop => return,
                Reply::Raw(frames) => {
                    let id = msh10(&frame);
                    for f in frames {
                        let _ = conn.send(f.replace("{id}", &id)).await;
                    }
                }
            }
        }
    }

    pub fn received(&self) -> Vec<Bytes> {
        self.received.lock().unwrap().clone()
    }

    /// MSH-10 of every received frame, in order.
    pub fn control_ids(&self) -> Vec<String> {
        self.received().iter().map(|f| msh10(f)).collect()
    }
}

pub fn msh10(frame: &[u8]) -> String {
    let text = String::from_utf8_lossy(frame);
    let m = hl7_parser::Message::parse_with_lenient_newlines(text.trim_end(), true).unwrap();
    m.segment("MSH")
        .unwrap()
        .field(10)
        .unwrap()
        .raw_value()
        .to_string()
}

/// The ACK an LIS sends for `frame` (the library's LIS-side builder); `msa2` replaces MSA-2.
fn ack(frame: &[u8], code: &str, msa2: Option<&str>, err: Option<u16>, text: &str) -> String {
    let mut to = iari::deliver::reply::read(frame).unwrap();
    let ack_id = format!("L{}", to.control_id);
    if let Some(id) = msa2 {
        to.control_id = id.to_string();
    }
    let code = iari::deliver::ack::AckCode::parse(code).unwrap();
    iari::deliver::reply::build(&to, code, err, text, &ack_id, chrono::Utc::now())
}

/// One row of `hl7_messages` as the tests look at it.
#[derive(Debug, sqlx::FromRow)]
pub struct MsgRow {
    pub id: i64,
    pub control_id: String,
    pub state: String,
    pub attempts: i32,
    pub ack_code: Option<String>,
    pub last_error: Option<String>,
    pub payload: Option<Vec<u8>>,
    pub acked: bool,
}

pub async fn messages(pool: &PgPool) -> Vec<MsgRow> {
    sqlx::query_as("SELECT id, control_id, state, attempts, ack_code, last_error, payload, acked_at IS NOT NULL AS acked FROM hl7_messages ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// `(attempt, outcome, ack_code)` of every attempt of message `id`.
pub async fn attempts(pool: &PgPool, id: i64) -> Vec<(i32, String, Option<String>)> {
    sqlx::query_as("SELECT attempt, outcome, ack_code FROM hl7_attempts WHERE message_id = $1 ORDER BY attempt")
        .bind(id)
        .fetch_all(pool)
        .await
        .unwrap()
}
