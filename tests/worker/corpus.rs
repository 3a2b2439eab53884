//! Every case of the bad-input corpus (`tests/corpus/bad-input/`) through one worker: each is
//! dead-lettered with its reason (or decided, where the manifest says so), the worker still
//! decides a good capture afterwards, and `/metrics` counted every outcome.

use crate::common::event;
use crate::corpus_cases::{build, load};
use crate::harness::{TestWorker, http_get, sample};
use iari::domain::Grade;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Sum of the samples of `name` whose labels contain `label` (`reason="x"`), from `/metrics`.
fn metric(text: &str, name: &str, label: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

struct Counts {
    dead: BTreeMap<String, u64>,
    retried_missing: u64,
    classified: u64,
}

async fn counts(w: &TestWorker) -> Counts {
    let addr = w.handle.as_ref().unwrap().http_addr.unwrap();
    let (code, text) = http_get(addr, "/metrics").await;
    assert_eq!(code, 200);
    let dead = iari::domain::DeadLetterReason::ALL
        .iter()
        .map(|r| {
            let label = format!("reason=\"{}\"", r.code());
            let n = metric(&text, "iari_captures_dead_lettered_total{", &label);
            (r.code().to_string(), n)
        })
        .collect();
    let classified = Grade::ALL
        .iter()
        .map(|g| {
            let label = format!("grade=\"{}\"", g.label());
            metric(&text, "iari_captures_classified_total{", &label)
        })
        .sum();
    Counts {
        dead,
        retried_missing: metric(
            &text,
            "iari_captures_retried_total{",
            "reason=\"image_missing\"",
        ),
        classified,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_case_gets_its_outcome_and_the_worker_keeps_working() {
    // Alone in its own process, so that `/metrics` counts only this test's captures.
    if !iari_kit::alone::in_own_process(
        module_path!(),
        "every_corpus_case_gets_its_outcome_and_the_worker_keeps_working",
    ) {
        return;
    }
    let cases = load();
    let w = TestWorker::start(&[]).await;
    let outside = tempfile::tempdir().unwrap();
    w.put_file("good.png", &sample("neg/neg-000.png"));
    let bodies: Vec<(String, Vec<u8>)> = cases
        .iter()
        .map(|c| (c.id.clone(), build(c, &w, outside.path())))
        .collect();
    let before = counts(&w).await;
    for (id, body) in &bodies {
        w.publish(id, body).await;
    }
    drop(bodies);

    // Wait until every case is settled one way or the other, then compare all at once.
    let mut dead: HashMap<String, String> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        while let Some((id, reason)) = w.take_dead_letter().await {
            assert!(dead.insert(id.clone(), reason).is_none(), "{id} twice");
        }
        let decided = w.count("SELECT count(*) FROM decisions").await as usize;
        if dead.len() + decided >= cases.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} dead-lettered and {decided} decided of {} cases",
            dead.len(),
            cases.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut wrong = Vec::new();
    for c in &cases {
        let got = match dead.get(&c.id) {
            Some(header) => header.split(':').next().unwrap_or_default().to_string(),
            None if w.decisions_for(&c.id).await == 1 => "decided".to_string(),
            None => "nothing".to_string(),
        };
        if got != c.expect {
            let detail = dead.get(&c.id).cloned().unwrap_or_default();
            wrong.push(format!(
                "{}: expected {}, got {got} ({detail})",
                c.id, c.expect
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // Still working: a good capture after all of that is decided.
    let after_id = "corpus-after-good";
    w.publish_json(after_id, &event(after_id, json!({ "path": "good.png" })))
        .await;
    let decided = cases.iter().filter(|c| c.decided()).count() as i64;
    w.wait_decisions(decided + 1, 120).await;
    assert_eq!(w.decisions_for(after_id).await, 1);

    // Counted, exactly: this process runs no other test.
    let after = counts(&w).await;
    let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
    for c in cases.iter().filter(|c| !c.decided()) {
        *expected.entry(c.expect.as_str()).or_default() += 1;
    }
    let grew: BTreeMap<&str, u64> = after
        .dead
        .iter()
        .map(|(reason, n)| (reason.as_str(), n - before.dead[reason]))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(grew, expected, "dead-lettered, by reason");
    let missing = expected.get("image_missing").copied().unwrap_or(0);
    // Delivery limit 3: two retries before the dead letter, for each missing image.
    assert_eq!(after.retried_missing - before.retried_missing, 2 * missing);
    // The decided cases and the good capture after them.
    assert_eq!(after.classified - before.classified, decided as u64 + 1);

    assert_eq!(w.queue_depth().await, 0);
    assert_eq!(
        w.dead_letter_depth().await,
        0,
        "no dead letter beyond the cases"
    );
    w.finish().await;
}
