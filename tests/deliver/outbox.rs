//! The outbox under stress: an LIS outage while results keep arriving, order per filler number,
//! two senders on one outbox, the file transport, and the review path.

use crate::common::*;
use iari::config::LisTransport;
use iari::deliver::{Sender, Step};
use std::collections::HashMap;
use std::time::Duration;

/// Steps until no message is pending (bounded), sleeping briefly while all wait for backoff.
async fn drain(s: &mut Sender, pool: &sqlx::PgPool) {
    for _ in 0..2000 {
        if messages(pool).await.iter().all(|m| m.state != "pending") {
            return;
        }
        if s.step().await.unwrap() == Step::Idle {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    panic!("outbox not drained: {:?}", messages(pool).await);
}

#[tokio::test]
async fn outage_loses_nothing_and_keeps_order_per_filler_number() {
    let pool = fresh_db().await;
    // An address where nothing listens yet: the LIS is down. Not an ephemeral port, which
    // another test's listener could take while this one waits for it.
    let addr = format!("127.0.0.1:{}", iari_kit::ports::free_port());
    let mut s = Sender::new(pool.clone(), &lis_settings(&addr)).unwrap();
    let mut decisions = Vec::new();
    for i in 0..6 {
        decisions.push(
            seed_decision(
                &pool,
                &format!("CAP-{i}"),
                "2+",
                ["2+", "2+", "3+", "2+", "1+"],
                true,
            )
            .await,
        );
        for _ in 0..3 {
            let step = s.step().await.unwrap();
            assert!(
                matches!(step, Step::Idle | Step::Retrying { reason: "io", .. }),
                "{step:?}"
            );
        }
    }
    // Reviews arrive during the outage too; each must follow its original.
    for d in &decisions[..3] {
        seed_review(&pool, *d, "2+", "F").await;
    }
    assert!(
        messages(&pool).await.iter().all(|m| m.state == "pending"),
        "nothing lost or parked"
    );

    let lis = FakeLis::start_at(&addr, vec![]).await;
    drain(&mut s, &pool).await;
    let rows = messages(&pool).await;
    assert!(rows.iter().all(|m| m.state == "acked"), "{rows:?}");
    let sent = lis.control_ids();
    let mut unique = sent.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), rows.len(), "every message arrived");
    let pos: HashMap<&str, usize> = sent
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    for (orig, review) in rows[..6].iter().zip(&rows[6..]).take(3) {
        assert!(
            pos[orig.control_id.as_str()] < pos[review.control_id.as_str()],
            "review overtook its original"
        );
    }
}

#[tokio::test]
async fn a_correction_waits_while_its_original_is_in_backoff() {
    let pool = fresh_db().await;
    // Final at 2+ (3 of 5), so a review at 3+ is a correction.
    let d = seed_decision(&pool, "CAP-1", "2+", ["2+", "2+", "3+", "2+", "1+"], false).await;
    seed_review(&pool, d, "3+", "C").await;
    let lis = FakeLis::start(vec![Reply::Ack("AR", None, "later")]).await;
    // A long backoff keeps the original waiting for as long as this test needs.
    let mut settings = lis_settings(&lis.addr);
    settings.backoff_initial_ms = 3_600_000;
    settings.backoff_max_ms = 3_600_000;
    let mut s = Sender::new(pool.clone(), &settings).unwrap();
    let rows = messages(&pool).await;
    assert!(matches!(s.step().await.unwrap(), Step::Retrying { id, .. } if id == rows[0].id));
    assert_eq!(
        s.step().await.unwrap(),
        Step::Idle,
        "the correction must not overtake"
    );
    // End the original's backoff; now both go, in order.
    sqlx::query("UPDATE hl7_messages SET next_attempt_at = now() WHERE id = $1")
        .bind(rows[0].id)
        .execute(&pool)
        .await
        .unwrap();
    drain(&mut s, &pool).await;
    let ids = lis.control_ids();
    assert_eq!(
        ids,
        vec![
            rows[0].control_id.clone(),
            rows[0].control_id.clone(),
            rows[1].control_id.clone()
        ]
    );
    let correction = String::from_utf8(lis.received()[2].to_vec()).unwrap();
    assert!(correction.contains("original AI grade 2+"), "{correction}");
    assert!(
        correction.contains("|3+^3+ adherence^99IAR|||A|0.2||C|"),
        "{correction}"
    );
}

#[tokio::test]
async fn file_transport_writes_one_complete_file_per_message() {
    let pool = fresh_db().await;
    seed_decision(&pool, "CAP-1", "neg", ["neg"; 5], false).await;
    seed_decision(&pool, "CAP-2", "1+", ["1+", "1+", "1+", "1+", "neg"], false).await;
    let dir = tempfile::tempdir().unwrap();
    let mut lis = lis_settings("127.0.0.1:9");
    lis.transport = LisTransport::File;
    lis.dir = dir.path().join("hl7");
    let mut s = Sender::new(pool.clone(), &lis).unwrap();
    drain(&mut s, &pool).await;
    let rows = messages(&pool).await;
    for m in &rows {
        let path = lis.dir.join(format!("{}.hl7", m.control_id));
        assert_eq!(std::fs::read(&path).unwrap(), m.payload.clone().unwrap());
        assert_eq!(attempts(&pool, m.id).await[0].1, "acked");
    }
    let names: Vec<_> = std::fs::read_dir(&lis.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names.len(),
        rows.len(),
        "no temporary files left: {names:?}"
    );
}

#[tokio::test]
async fn run_sender_delivers_counts_and_stops_on_cancel() {
    use iari::metrics::metrics;
    // Alone in its own process, so that the process-wide counters count only this test.
    if !iari_kit::alone::in_own_process(
        module_path!(),
        "run_sender_delivers_counts_and_stops_on_cancel",
    ) {
        return;
    }
    let pool = fresh_db().await;
    seed_decision(&pool, "CAP-1", "2+", ["2+", "2+", "3+", "2+", "1+"], true).await;
    seed_decision(&pool, "CAP-2", "neg", ["neg"; 5], false).await;
    let lis = FakeLis::start(vec![Reply::Ack("AE", Some(102), "bad")]).await;
    let mut settings = iari::config::Settings::load_from(None, Some(Default::default())).unwrap();
    settings.lis = lis_settings(&lis.addr);
    let (acked0, ae0) = (
        metrics().hl7_acked.with_label_values::<&str>(&[]).get(),
        metrics().hl7_failed.with_label_values(&["ae"]).get(),
    );
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn({
        let (pool, cancel) = (pool.clone(), cancel.clone());
        async move { iari::deliver::run_sender(pool, &settings, cancel).await }
    });
    for _ in 0..3000 {
        if messages(&pool).await.iter().all(|m| m.state != "pending") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cancel.cancel();
    task.await.unwrap().unwrap();
    let states: Vec<String> = messages(&pool).await.into_iter().map(|m| m.state).collect();
    assert_eq!(states, vec!["failed", "acked"]);
    // One AA, one AE.
    assert_eq!(
        (
            metrics().hl7_acked.with_label_values::<&str>(&[]).get() - acked0,
            metrics().hl7_failed.with_label_values(&["ae"]).get() - ae0
        ),
        (1, 1)
    );
}

/// A live lease (another sender mid-send) is skipped; an expired one (a sender that died) is
/// taken over, and the stored bytes are resent unchanged.
#[tokio::test]
async fn live_leases_are_skipped_and_expired_ones_taken_over() {
    let pool = fresh_db().await;
    seed_decision(&pool, "CAP-1", "neg", ["neg"; 5], false).await;
    let row = &messages(&pool).await[0];
    let id = row.id;
    // Bytes a dead sender stored: a rebuilt message would not carry "STORED" in MSH-3.
    let stored = format!(
        "MSH|^~\\&|STORED|BB_LAB|LIS|HOSP|20260101000000+0000||ORU^R01^ORU_R01|{}|P|2.5.1\r",
        row.control_id
    )
    .into_bytes();
    sqlx::query("UPDATE hl7_messages SET payload = $2, claimed_by = 'other', claimed_until = now() + interval '1 hour' WHERE id = $1")
        .bind(id)
        .bind(&stored)
        .execute(&pool)
        .await
        .unwrap();
    let lis = FakeLis::start(vec![]).await;
    let mut s = Sender::new(pool.clone(), &lis_settings(&lis.addr)).unwrap();
    assert_eq!(
        s.step().await.unwrap(),
        Step::Idle,
        "another sender holds the lease"
    );
    sqlx::query(
        "UPDATE hl7_messages SET claimed_until = now() - interval '1 second' WHERE id = $1",
    )
    .bind(id)
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(s.step().await.unwrap(), Step::Delivered { id });
    assert_eq!(
        lis.received()[0].as_ref(),
        &stored[..],
        "the stored payload, not a rebuilt one"
    );
}
