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

/// The stages over `pool` and the images under `root`, released under `policy`, without plate
/// QC; the last delivery allowed is the third.
fn processor(
    s: &iari::config::Settings,
    engine: Arc<Engine>,
    pool: &sqlx::PgPool,
    root: &std::path::Path,
    policy: iari::release::ActivePolicy,
) -> Processor {
    Processor {
        provenance: Arc::new(provenance(&engine)),
        engine,
        pool: pool.clone(),
        prepare: Arc::new(PrepareContext {
            events: EventLimits::for_images(s.plate, s.images.max_bytes),
            images: ImageLimits::from(&s.images),
            root: ImageRoot::new(root, s.images.max_bytes).unwrap(),
        }),
        delivery_limit: 3,
        qc: None,
        policy,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_batch_settles_each_message_on_its_own() {
    let (pool, url) = fresh_db().await;
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("ok.png"), sample("neg/neg-000.png")).unwrap();
    let s = settings(&url, "unused", &[("IARI__AMQP__DELIVERY_LIMIT", "3")]);
    let engine = Arc::new(Engine::load(&s).unwrap());
    let p = processor(&s, engine, &pool, root.path(), Default::default());
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

/// A policy switch under load: batches run while another task flips the policy in force back and
/// forth between one that releases everything it may as final and one that sends everything to
/// review. Every decision records one policy, its release is what that policy gives for its
/// stored facts, and every batch is under one policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_switch_under_load_leaves_each_decision_under_one_policy() {
    use iari::release::simulate::stored_cases;
    use iari::release::{ActivePolicy, Policy, PolicySnapshot, decide};
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::atomic::{AtomicBool, Ordering};

    let (pool, url) = fresh_db().await;
    let root = tempfile::tempdir().unwrap();
    let grades = ["neg", "1+", "2+", "3+", "4+"];
    for (i, g) in grades.iter().enumerate() {
        let prefix = if *g == "neg" {
            "neg".to_string()
        } else {
            format!("{}p", &g[..1])
        };
        for k in 0..2 {
            let name = format!("{prefix}-{k:03}.png");
            std::fs::write(
                root.path().join(format!("{i}-{k}.png")),
                sample(&format!("{g}/{name}")),
            )
            .unwrap();
        }
    }
    let s = settings(&url, "unused", &[]);
    let engine = Arc::new(Engine::load(&s).unwrap());
    let all_final =
        Policy::parse(b"version = \"A\"\nname = \"final\"\n[[rule]]\noutcome = \"final\"\n")
            .unwrap();
    let all_review =
        Policy::parse(b"version = \"B\"\nname = \"review\"\n[[rule]]\noutcome = \"review\"\n")
            .unwrap();
    let handle = ActivePolicy::new(PolicySnapshot::new(all_final.clone(), false));
    let p = processor(&s, engine, &pool, root.path(), handle.clone());
    let batch = |b: usize| {
        let ids: Vec<String> = (0..5).map(|i| format!("SW-{b}-{i}")).collect();
        let bodies = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let path = format!("{}-{}.png", (b + i) % 5, b % 2);
                incoming(
                    serde_json::to_vec(&event(id, json!({"path": path}))).unwrap(),
                    0,
                )
            })
            .collect::<Vec<_>>();
        (ids, bodies)
    };
    let mut batches = Vec::new();
    // Deterministic first: one batch under each policy.
    for (b, policy) in [(0, &all_final), (1, &all_review)] {
        handle.set(PolicySnapshot::new(policy.clone(), false));
        let (ids, bodies) = batch(b);
        p.process_batch(bodies, &CancellationToken::new()).await;
        batches.push(ids);
    }
    // Then under load, with the policy flipping as fast as it can.
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let (handle, stop) = (handle.clone(), stop.clone());
        let (a, b) = (all_final.clone(), all_review.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let next = if n.is_multiple_of(2) { &a } else { &b };
                handle.set(PolicySnapshot::new(next.clone(), false));
                n += 1;
                tokio::task::yield_now().await;
            }
            n
        })
    };
    for b in 2..8 {
        let (ids, bodies) = batch(b);
        let out = p.process_batch(bodies, &CancellationToken::new()).await;
        assert!(
            out.iter().all(|d| matches!(d, Disposition::Decided { .. })),
            "{out:?}"
        );
        batches.push(ids);
    }
    stop.store(true, Ordering::Relaxed);
    assert!(
        flipper.await.unwrap() > 2,
        "the policy was switched during the batches"
    );

    let rows: Vec<(String, bool, Option<String>)> = sqlx::query_as(
        "SELECT capture_id, needs_review, runtime -> 'policy' ->> 'sha256' FROM decisions ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 40);
    let cases = stored_cases(&pool, None, None).await.unwrap();
    let by_sha: BTreeMap<String, &Policy> = [&all_final, &all_review]
        .into_iter()
        .map(|p| (p.sha256.to_string(), p))
        .collect();
    let mut sha_of: BTreeMap<&str, &str> = BTreeMap::new();
    for ((capture, needs_review, sha), case) in rows.iter().zip(&cases) {
        let sha = sha.as_deref().expect("every decision records its policy");
        let policy = by_sha
            .get(sha)
            .unwrap_or_else(|| panic!("{capture}: unknown policy {sha}"));
        let v = decide(policy, false, &case.facts);
        assert_eq!(
            v.release.needs_review(),
            *needs_review,
            "{capture} under {}",
            policy.name()
        );
        sha_of.insert(capture, sha);
    }
    for ids in &batches {
        let shas: BTreeSet<&str> = ids.iter().map(|id| sha_of[id.as_str()]).collect();
        assert_eq!(shas.len(), 1, "batch {ids:?} is under one policy");
    }
    let used: BTreeSet<&str> = sha_of.values().copied().collect();
    assert_eq!(used.len(), 2, "both policies released decisions");
}

/// A policy that releases everything it may as final, against what a capture carries: the
/// unanimous, in-date capture goes out final; the same image read with an expired reagent is
/// flagged `reagent_expired` by ingest and the safety rule keeps it for review; under a suspended
/// policy the first one needs review too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_rules_and_suspension_hold_in_the_worker_whatever_the_policy() {
    use iari::release::{ActivePolicy, Policy, PolicySnapshot};
    let (pool, url) = fresh_db().await;
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("w.png"), sample("4+/4p-000.png")).unwrap();
    let s = settings(&url, "unused", &[]);
    let engine = Arc::new(Engine::load(&s).unwrap());
    let reckless =
        Policy::parse(b"version = \"R\"\nname = \"release all\"\n[[rule]]\noutcome = \"final\"\n")
            .unwrap();
    let handle = ActivePolicy::new(PolicySnapshot::new(reckless.clone(), false));
    let p = processor(&s, engine, &pool, root.path(), handle.clone());
    let body = |id: &str, expires: &str| {
        let mut e = event(id, json!({"path": "w.png"}));
        e["reagent"] = json!({"lot": "L1", "expires": expires});
        incoming(serde_json::to_vec(&e).unwrap(), 0)
    };
    let out = p
        .process_batch(
            vec![body("R-OK", "2027-03-31"), body("R-OLD", "2026-01-31")],
            &CancellationToken::new(),
        )
        .await;
    assert!(
        out.iter().all(|d| matches!(d, Disposition::Decided { .. })),
        "{out:?}"
    );
    handle.set(PolicySnapshot::new(reckless, true));
    p.process_batch(
        vec![body("R-SUSP", "2027-03-31")],
        &CancellationToken::new(),
    )
    .await;
    let rows: Vec<(String, Vec<String>, bool, bool)> = sqlx::query_as(
        "SELECT capture_id, flags, needs_review, (runtime -> 'policy' ->> 'suspended')::bool \
         FROM decisions ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let [ok, old, susp] = rows.as_slice() else {
        panic!("{rows:?}")
    };
    assert!(ok.1.is_empty(), "the sample is read unanimously: {ok:?}");
    assert_eq!((ok.2, ok.3), (false, false), "released final: {ok:?}");
    assert!(old.1.contains(&"reagent_expired".to_string()), "{old:?}");
    assert!(old.2, "an expired reagent always needs review: {old:?}");
    assert_eq!((susp.2, susp.3), (true, true), "suspended: {susp:?}");
}
