//! Seeding through the product's own write paths: a decision is written by the worker's batch
//! write (`store::decisions::write_batch`: image, capture, decision and its outbox row), a review
//! by `audit::sign_review` (as a kit account), and a delivery by the real sender against the fake LIS (see
//! [`deliver`]). Each helper is a thin wrapper around one product call, so a change of that call's
//! signature is a change here only. The numbers in what is seeded are synthetic.

use crate::lis::{FakeLis, Reply};
use chrono::{DateTime, Utc};
use iari::audit::{ReviewOutcome, SignRequest, sign_review};
use iari::auth::{Principal, users};
use iari::deliver::{Sender, Step};
use iari::domain::{
    Classification, Flag, Grade, ModelAnswer, ModelRef, Outcome, PlateFormat, Role, Sha256Digest,
    ShiftScore,
};
use iari::ingest::event::{EventLimits, parse};
use iari::store::decisions::{
    ImageRow, NewDecision, Provenance, Timings, WriteOutcome, write_batch,
};
use serde_json::{Value, json};
use sqlx::PgPool;
use std::time::Duration;

/// The committed ensemble's sub-models in manifest order, as seeded rows and reports name them.
pub const MODEL_NAMES: [&str; 5] = [
    "alexnet-cbam",
    "vgg-cbam",
    "resnet-cbam",
    "inception-cbam",
    "densenet-cbam",
];

/// One synthetic decision to seed; `Default` gives an unflagged, final 2+ (five 2+ votes) on
/// plate P1 well A1, decided now.
#[derive(Clone, Debug)]
pub struct Seed {
    pub capture: String,
    pub accession: String,
    pub plate: String,
    pub well: String,
    pub captured_at: DateTime<Utc>,
    /// The event's `patient` and `order` objects, when the test needs them in HL7.
    pub patient: Option<Value>,
    pub order: Option<Value>,
    pub grade: &'static str,
    pub votes: [&'static str; 5],
    pub flags: Vec<&'static str>,
    pub needs_review: bool,
    pub confidence: f32,
    pub ensemble_version: String,
    pub model_version: String,
    /// `None`: decided now, as the worker does. A time in the past: see [`backdated`].
    pub decided_at: Option<DateTime<Utc>>,
    /// A real image to store (its size read from it); `None`: placeholder bytes, 229 × 230.
    pub image: Option<Vec<u8>>,
    /// Shift score and version (migration 0008); `None` writes neither column, as before it.
    pub shift: Option<(f64, &'static str)>,
    /// The event's `plate.role` (`negative_control`, `positive_control`); `None`: a patient well.
    pub role: Option<&'static str>,
}

impl Default for Seed {
    fn default() -> Self {
        Seed {
            capture: format!("CAP-{}", uuid::Uuid::new_v4().simple()),
            accession: "ACC1".into(),
            plate: "P1".into(),
            well: "A1".into(),
            captured_at: "2026-11-26T09:59:00Z".parse().expect("a timestamp"),
            patient: None,
            order: None,
            grade: "2+",
            votes: ["2+"; 5],
            flags: vec![],
            needs_review: false,
            confidence: 0.71,
            ensemble_version: "ENS-1.0.0".into(),
            model_version: "1.0.0".into(),
            decided_at: None,
            image: None,
            shift: None,
            role: None,
        }
    }
}

impl Seed {
    /// The capture event as an analyzer publishes it, parsed by the worker's own parser.
    pub fn event(&self) -> iari::domain::CaptureEvent {
        let mut e = json!({
            "schema": "iari.capture.v1", "capture_id": self.capture,
            "captured_at": self.captured_at.to_rfc3339(), "analyzer": {"id": "HCM-01"},
            "plate": {"id": self.plate, "well": self.well},
            "specimen": {"accession": self.accession}, "image": {"path": "seeded.png"},
        });
        if let Some(r) = self.role {
            e["plate"]["role"] = json!(r);
        }
        if let Some(p) = &self.patient {
            e["patient"] = p.clone();
        }
        if let Some(o) = &self.order {
            e["order"] = o.clone();
        }
        let limits = EventLimits::for_images(PlateFormat::default(), 1 << 20);
        let body = serde_json::to_vec(&e).expect("JSON");
        parse(&body, &limits).unwrap_or_else(|f| panic!("seed event {}: {f:?}", self.capture))
    }

    /// The image bytes: the seed's own, or placeholder bytes unique per capture, so every
    /// seeded decision has its own image row.
    pub fn image(&self) -> Vec<u8> {
        self.image
            .clone()
            .unwrap_or_else(|| format!("png bytes of {}", self.capture).into_bytes())
    }

    /// Width and height to store: the real image's, or the placeholder's 229 × 230.
    fn size(&self, image: &[u8]) -> (u32, u32) {
        if self.image.is_none() {
            return (229, 230);
        }
        let limits = iari::classify::ImageLimits {
            max_bytes: 64 << 20,
            max_width: 8192,
            max_height: 8192,
            decode_budget: std::time::Duration::from_secs(60),
        };
        let d = iari::classify::decode(image, &limits).expect("the seed's image decodes");
        (d.width(), d.height())
    }

    /// The synthetic classification the seed describes: five votes, 0.7 on each vote's grade.
    pub fn classification(&self) -> Classification {
        let grade: Grade = self.grade.parse().expect("seed grade");
        let models: Vec<(ModelRef, ModelAnswer)> = MODEL_NAMES
            .iter()
            .zip(self.votes)
            .map(|(name, vote)| {
                let vote: Grade = vote.parse().expect("seed vote");
                let mut probabilities = [0.075f32; 5];
                probabilities[vote.index()] = 0.7;
                let model = ModelRef {
                    name: name.to_string(),
                    version: self.model_version.clone(),
                    sha256: Sha256Digest::of(name.as_bytes()),
                };
                (
                    model,
                    ModelAnswer::Voted {
                        probabilities,
                        vote,
                    },
                )
            })
            .collect();
        let agreeing = self.votes.iter().filter(|v| **v == self.grade).count();
        Classification {
            image_sha256: Sha256Digest::of(&self.image()),
            // The committed reference's threshold (shift-1).
            shift: self.shift.map(|(score, version)| ShiftScore {
                version: version.into(),
                score,
                threshold: 11.968530549921091,
            }),
            models,
            outcome: Outcome {
                grade,
                agreement: agreeing as f32 / 5.0,
                confidence: self.confidence,
                flags: self
                    .flags
                    .iter()
                    .map(|f| Flag::parse(f).expect("seed flag"))
                    .collect(),
                needs_review: self.needs_review,
            },
        }
    }

    /// A synthetic worker: CPU provider after a CUDA fallback, on `lab-host-1`.
    pub fn provenance(&self) -> Provenance {
        Provenance {
            ensemble_name: "iari-cbam".into(),
            ensemble_version: self.ensemble_version.clone(),
            runtime: json!({"onnxruntime_version": "1.22.0", "provider": "CPUExecutionProvider",
                "requested": "auto", "fallback_reason": "CUDA not available",
                "preprocessing": "pp-area-1"}),
            worker: json!({"version": "0.1.0", "build": "abc123", "host": "lab-host-1", "pid": 4242}),
        }
    }
}

/// Writes the seed's decision as the worker does; returns the decision id.
pub async fn decision(pool: &PgPool, s: &Seed) -> i64 {
    classified(pool, s, &s.image(), &s.classification()).await
}

/// Writes `image` with classification `c` (a real or an edited one) as the worker does, with
/// the seed's event and provenance; returns the decision id.
pub async fn classified(pool: &PgPool, s: &Seed, image: &[u8], c: &Classification) -> i64 {
    written(pool, s, image, c, &s.provenance()).await
}

/// Like [`classified`], with the worker's `provenance` (for example `iari::app::provenance` of
/// a real engine) instead of the seed's synthetic one.
pub async fn written(
    pool: &PgPool,
    s: &Seed,
    image: &[u8],
    c: &Classification,
    provenance: &Provenance,
) -> i64 {
    let event = s.event();
    let (width, height) = s.size(image);
    let batch = [NewDecision {
        event: &event,
        image: ImageRow {
            sha256: Sha256Digest::of(image),
            media_type: "image/png",
            width,
            height,
            bytes: image,
        },
        classification: c,
        timings: Timings {
            decode_ms: 1.5,
            preprocess_ms: 0.8,
            inference_ms: 12.25,
            queue_ms: 0.0,
            batch_size: 4,
        },
    }];
    let write = write_batch(pool, provenance, None, &batch);
    let outcomes = match s.decided_at {
        None => write.await,
        Some(at) => backdated(pool, at, write).await,
    };
    match outcomes.expect("the batch write").as_slice() {
        [WriteOutcome::Decided { decision_id }] => *decision_id,
        other => panic!("seed {}: {other:?}", s.capture),
    }
}

/// Runs `write` with `decisions.decided_at` defaulting to `at`.
///
/// No product write path takes a decision time: the database stamps `now()`. Tests of time
/// filters need decisions in the past, so the kit moves the column's default for one write and
/// back; the product's own INSERT then stores `at` and the chain trigger hashes it like any other
/// value. The default is per database: do not seed backdated decisions concurrently in one.
pub async fn backdated<T>(pool: &PgPool, at: DateTime<Utc>, write: impl Future<Output = T>) -> T {
    let set = |default: String| {
        let sql = format!("ALTER TABLE decisions ALTER COLUMN decided_at SET DEFAULT {default}");
        sqlx::query(sqlx::AssertSqlSafe(sql))
    };
    // RFC 3339 from a DateTime: no quote can occur in it.
    let literal = format!("'{}'::timestamptz", at.to_rfc3339());
    set(literal)
        .execute(pool)
        .await
        .expect("backdate decided_at");
    let out = write.await;
    set("now()".into())
        .execute(pool)
        .await
        .expect("restore decided_at");
    out
}

/// The password of every account the kit makes (tests only).
pub const PASSWORD: &str = "kit password 12345";

/// A person's signed review of decision `id`, recorded (with its signature and HL7 message, if
/// any) by the product's `audit::sign_review`. The signer is an account for `by` (its full name;
/// the user name is `by` in lowercase letters and digits), made on first use.
pub async fn review(
    pool: &PgPool,
    decision_id: i64,
    grade: &str,
    by: &str,
    comment: Option<&str>,
) -> ReviewOutcome {
    let who = signer(pool, by).await;
    let req = SignRequest {
        grade: grade.parse().expect("a grade"),
        meaning: None,
        reason_code: Some("visual_read".into()),
        reason_text: comment.map(str::to_string),
    };
    let reasons = iari::config::Settings::load_from(None, Some(Default::default()))
        .expect("default settings")
        .workstation
        .reasons;
    sign_review(pool, &who, decision_id, &req, &reasons)
        .await
        .unwrap_or_else(|e| panic!("review of {decision_id}: {e}"))
}

/// The supervisor account for `full_name` (a role that may sign preliminary and final results),
/// through `auth::users::add` the first time.
pub async fn signer(pool: &PgPool, full_name: &str) -> Principal {
    let mut username: String = full_name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_lowercase();
    if username.len() < 2 {
        username.push_str("reviewer");
    }
    let find = || async {
        sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE username = $1")
            .bind(&username)
            .fetch_optional(pool)
            .await
            .expect("users")
    };
    let user_id = match find().await {
        Some(id) => id,
        None => {
            let added = users::add(
                pool,
                &username,
                full_name,
                Role::Supervisor,
                PASSWORD,
                false,
                "iari-kit",
            )
            .await;
            // Seeding tasks running at once may race to make the same account: the loser
            // takes the winner's.
            match added {
                Ok(id) => id,
                Err(e) => find()
                    .await
                    .unwrap_or_else(|| panic!("account for {full_name}: {e}")),
            }
        }
    };
    Principal {
        user_id,
        username,
        full_name: full_name.into(),
        role: Role::Supervisor,
    }
}

/// Delivers the latest message of decision `id` with the real sender to a fake LIS that first
/// answers AR (busy, so the sender records a resend) and then `last` (`AA`, `CA`, `AE`, ...), as
/// a delivery after one retry. The message must be the only one due: the sender takes the
/// oldest first, and this panics if it took another.
pub async fn deliver(pool: &PgPool, decision_id: i64, last: &'static str) {
    let message: i64 = sqlx::query_scalar(
        "SELECT id FROM hl7_messages WHERE decision_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(decision_id)
    .fetch_one(pool)
    .await
    .expect("the decision's outbox message");
    let error = (last != "AA" && last != "CA").then_some(101);
    let text = if error.is_some() {
        "unknown patient"
    } else {
        "accepted"
    };
    let lis = FakeLis::start(vec![
        Reply::Ack("AR", Some(207), "busy"),
        Reply::Ack(last, error, text),
    ])
    .await;
    let mut settings = crate::lis::settings(&lis.addr);
    settings.backoff_initial_ms = 1;
    settings.backoff_max_ms = 1;
    // Generous: a loaded machine must not turn the AA into a timeout and a third attempt.
    settings.ack_timeout_ms = 30_000;
    let mut sender = Sender::new(pool.clone(), &settings).expect("a sender");
    for _ in 0..1000 {
        let step = sender.step().await.expect("a sender step");
        match step {
            Step::Idle => tokio::time::sleep(Duration::from_millis(5)).await,
            Step::Retrying { id, .. } if id == message => {}
            Step::Delivered { id } | Step::Parked { id } if id == message => return,
            other => panic!("delivering message {message}, the sender did {other:?}"),
        }
    }
    panic!("message {message} not delivered");
}
