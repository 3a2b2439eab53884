//! The processing step driven directly, without a broker: bodies in, dispositions out.

use crate::common::{event, fresh_db, settings};
use crate::harness::sample;
use iari::app::provenance;
use iari::classify::{Engine, ImageLimits};
use iari::domain::DeadLetterReason;
use iari::ingest::EventLimits;
use iari::ingest::source::ImageRoot;
use iari::pipeline::{Disposition, Incoming, PrepareContext, Processor};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

fn incoming(body: Vec<u8>, delivery_count: u32) -> Incoming {
    Incoming {
        body,
        delivery_count,
        received_at: Instant::now(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_batch_settles_each_message_on_its_own() {
    let (pool, url) = fresh_db().await;
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("ok.png"), sample("neg/neg-000.png")).unwrap();
    let s = settings(&url, "unused", &[("IARI__AMQP__DELIVERY_LIMIT", "3")]);
    let engine = Arc::new(Engine::load(&s).unwrap());
    let p = Processor {
        provenance: Arc::new(provenance(&engine)),
        engine,
        pool: pool.clone(),
        prepare: Arc::new(PrepareContext {
            events: EventLimits::for_images(s.plate, s.images.max_bytes),
            images: ImageLimits::from(&s.images),
            root: ImageRoot::new(root.path(), s.images.max_bytes).unwrap(),
        }),
        delivery_limit: 3,
        qc: None,
    };
    let ok = serde_json::to_vec(&event("P-OK", json!({"path": "ok.png"}))).unwrap();
    let missing = serde_json::to_vec(&event("P-MISS", json!({"path": "nope.png"}))).unwrap();
    let batch = vec![
        incoming(ok.clone(), 0),
        incoming(b"not json".to_vec(), 0),
        incoming(missing.clone(), 0),
        incoming(missing, 2),
    ];
    let out = p.process_batch(batch, &CancellationToken::new()).await;
    let Disposition::Decided { decision_id } = out[0] else {
        panic!("{out:?}")
    };
    assert!(
        matches!(&out[1], Disposition::DeadLetter(f) if f.reason == DeadLetterReason::InvalidEvent)
    );
    assert!(matches!(&out[2], Disposition::Retry(f) if f.reason == DeadLetterReason::ImageMissing));
    assert!(
        matches!(&out[3], Disposition::DeadLetter(f) if f.reason == DeadLetterReason::ImageMissing)
    );
    let again = p
        .process_batch(vec![incoming(ok, 1)], &CancellationToken::new())
        .await;
    assert_eq!(again, vec![Disposition::Duplicate { decision_id }]);
}
