//! Every row of the profile's ACK table, driven through a fake LIS.

use crate::common::*;
use iari::deliver::{Sender, Step};
use std::time::Duration;

async fn setup(script: Vec<Reply>) -> (sqlx::PgPool, FakeLis, Sender) {
    let pool = fresh_db().await;
    seed_decision(&pool, "CAP-1", "2+", ["2+", "2+", "3+", "2+", "1+"], true).await;
    let lis = FakeLis::start(script).await;
    let sender = Sender::new(pool.clone(), &lis_settings(&lis.addr)).unwrap();
    (pool, lis, sender)
}

/// Steps until something other than Idle happens (backoff delays make some steps idle).
async fn step_busy(s: &mut Sender) -> Step {
    for _ in 0..200 {
        match s.step().await.unwrap() {
            Step::Idle => tokio::time::sleep(Duration::from_millis(10)).await,
            other => return other,
        }
    }
    panic!("sender stayed idle");
}

#[tokio::test]
async fn aa_is_delivered_with_the_ack_stored() {
    for code in ["AA"] {
        let (pool, lis, mut s) = setup(vec![Reply::Ack(code, None, "ok")]).await;
        let id = messages(&pool).await[0].id;
        assert_eq!(s.step().await.unwrap(), Step::Delivered { id });
        let m = &messages(&pool).await[0];
        assert_eq!(
            (m.state.as_str(), m.attempts, m.ack_code.as_deref(), m.acked),
            ("acked", 1, Some(code), true)
        );
        assert_eq!(
            attempts(&pool, id).await,
            vec![(1, "acked".to_string(), Some(code.to_string()))]
        );
        assert_eq!(lis.control_ids(), vec![m.control_id.clone()]);
        assert_eq!(
            lis.received()[0].as_ref(),
            m.payload.as_deref().unwrap(),
            "sent exactly the stored payload"
        );
        assert_eq!(s.step().await.unwrap(), Step::Idle);
    }
}

#[tokio::test]
async fn ae_parks_the_message_and_never_resends_it() {
    let (pool, lis, mut s) = setup(vec![Reply::Ack("AE", Some(101), "PID-3 missing")]).await;
    let id = messages(&pool).await[0].id;
    assert_eq!(s.step().await.unwrap(), Step::Parked { id });
    let m = &messages(&pool).await[0];
    assert_eq!(
        (m.state.as_str(), m.ack_code.as_deref()),
        ("failed", Some("AE"))
    );
    assert!(
        m.last_error.as_deref().unwrap().contains("PID-3 missing"),
        "{:?}",
        m.last_error
    );
    assert_eq!(attempts(&pool, id).await[0].1, "error_ae");
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(s.step().await.unwrap(), Step::Idle);
    assert_eq!(lis.received().len(), 1);
}

#[tokio::test]
async fn ar_200_to_203_stops_sending_and_keeps_everything_queued() {
    for code in 200..=203u16 {
        let (pool, lis, mut s) = setup(vec![Reply::Ack("AR", Some(code), "unsupported")]).await;
        seed_decision(&pool, "CAP-2", "neg", ["neg"; 5], false).await;
        let id = messages(&pool).await[0].id;
        assert_eq!(s.step().await.unwrap(), Step::Halted { id });
        assert!(s.is_halted());
        assert_eq!(
            s.step().await.unwrap(),
            Step::Idle,
            "no further sends after a configuration error"
        );
        let all = messages(&pool).await;
        assert!(
            all.iter().all(|m| m.state == "pending"),
            "everything stays queued"
        );
        assert_eq!(attempts(&pool, id).await[0].1, "config_error");
        assert_eq!(lis.received().len(), 1);
    }
}

/// Resend rows: other AR, no ACK in time, dropped connection. The same bytes and MSH-10 go
/// again after backoff, and the second answer (AA) delivers.
#[tokio::test]
async fn other_ar_timeout_and_drop_resend_the_same_bytes() {
    let cases = [
        (Reply::Ack("AR", Some(207), "busy"), "ar", "rejected_ar"),
        (Reply::Ack("AR", None, "try later"), "ar", "rejected_ar"),
        (Reply::Silence, "timeout", "timeout"),
        (Reply::Drop, "io", "dropped"),
    ];
    for (reply, reason, outcome) in cases {
        let (pool, lis, mut s) = setup(vec![reply]).await;
        let id = messages(&pool).await[0].id;
        match s.step().await.unwrap() {
            Step::Retrying {
                id: got,
                reason: r,
                after,
            } => {
                assert_eq!((got, r), (id, reason));
                assert_eq!(after, Duration::from_millis(10), "first backoff step");
            }
            other => panic!("{reason}: expected a retry, got {other:?}"),
        }
        assert_eq!(messages(&pool).await[0].state, "pending");
        assert_eq!(step_busy(&mut s).await, Step::Delivered { id });
        let got = lis.received();
        assert_eq!(got.len(), 2, "{reason}");
        assert_eq!(got[0], got[1], "{reason}: resent byte for byte");
        let kinds: Vec<String> = attempts(&pool, id).await.into_iter().map(|a| a.1).collect();
        assert_eq!(kinds, vec![outcome.to_string(), "acked".to_string()]);
    }
}

#[tokio::test]
async fn backoff_grows_exponentially_and_is_bounded() {
    let (pool, _lis, mut s) = setup(vec![Reply::Ack("AR", None, ""); 5]).await;
    let mut delays = Vec::new();
    while delays.len() < 5 {
        if let Step::Retrying { after, .. } = step_busy(&mut s).await {
            delays.push(after.as_millis());
        }
    }
    assert_eq!(delays, vec![10, 20, 40, 40, 40]);
    assert_eq!(messages(&pool).await[0].attempts, 5);
}

#[tokio::test]
async fn foreign_msa2_is_ignored_and_a_slow_ack_still_counts() {
    let (pool, lis, mut s) = setup(vec![
        Reply::ForeignThenAa,
        Reply::DelayedAa(Duration::from_millis(100)),
    ])
    .await;
    seed_decision(&pool, "CAP-2", "neg", ["neg"; 5], false).await;
    let ids: Vec<i64> = messages(&pool).await.iter().map(|m| m.id).collect();
    assert_eq!(s.step().await.unwrap(), Step::Delivered { id: ids[0] });
    assert_eq!(
        attempts(&pool, ids[0]).await.len(),
        1,
        "one attempt: the foreign ACK was skipped"
    );
    // The second message: the LIS answers within the ACK timeout, only later than usual.
    assert_eq!(s.step().await.unwrap(), Step::Delivered { id: ids[1] });
    assert_eq!(lis.received().len(), 2);
}
