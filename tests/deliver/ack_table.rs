//! The revised ACK table (hl7-profile.md, Revision 2) row by row, driven by a fake LIS that
//! answers with ACKs written out by hand here, as a v2.5, v2.4 or v2.3 LIS would send them (not
//! built by the product's own reply builder); plus the attempt cap and the operator's resend and
//! park (`store::outbox::ops`).

use crate::common::*;
use iari::deliver::{Sender, Step};
use iari::store::outbox::ops;
use std::time::Duration;

const CA: &str =
    "MSH|^~\\&|LIS|HOSP|IARI|BB_LAB|20261126133005||ACK^R01^ACK|C1|P|2.5.1|||AL|AL\rMSA|CA|{id}\r";
const AA: &str =
    "MSH|^~\\&|LIS|HOSP|IARI|BB_LAB|20261126133006||ACK^R01^ACK|A1|P|2.5.1\rMSA|AA|{id}\r";
const AE: &str = "MSH|^~\\&|LIS|HOSP|IARI|BB_LAB|20261126133006||ACK^R01^ACK|A2|P|2.5.1\rMSA|AE|{id}|Unknown test code\rERR|||103^Table value not found^HL70357|E\r";
const CE: &str = "MSH|^~\\&|LIS|HOSP|IARI|BB_LAB|20261126133005||ACK^R01^ACK|C2|P|2.5.1\rMSA|CE|{id}|sequence error\r";
const CR_203: &str = "MSH|^~\\&|LIS|HOSP|IARI|BB_LAB|20261126133005||ACK^R01^ACK|C3|P|2.5.1\rMSA|CR|{id}\rERR|||203^Unsupported version id^HL70357|E\r";
/// A v2.5 LIS that already has the message (we resent it after a timeout).
const AE_205: &str = "MSH|^~\\&|LIS|HOSP|IARI|BB_LAB|20261126133007||ACK^R01^ACK|A3|P|2.5.1\rMSA|AE|{id}|duplicate\rERR|||205^Duplicate key identifier^HL70357|E\r";
/// A v2.4 LIS: the error code only in ERR-1 (segment, position, field, and the code as a CE).
const AR_ERR1_200: &str = "MSH|^~\\&|LIS|HOSP|IARI|BB_LAB|20261126133005||ACK^R01|A4|P|2.4\rMSA|AR|{id}\rERR|MSH^1^9^200&Unsupported message type&HL70357\r";
/// A v2.3 LIS: the error code only in MSA-6.
const AR_MSA6_201: &str = "MSH|^~\\&|LIS|HOSP|IARI|BB_LAB|20261126133005||ACK^R01|A5|P|2.3\rMSA|AR|{id}|event not supported|||201^Unsupported event code^HL70357\r";
/// A v2.4 LIS that already has the message, saying so with AR and 205 in ERR-1.
const AR_ERR1_205: &str = "MSH|^~\\&|LIS|HOSP|IARI|BB_LAB|20261126133008||ACK^R01|A7|P|2.4\rMSA|AR|{id}|duplicate\rERR|MSH^1^10^205&Duplicate key identifier&HL70357\r";
const AR_207: &str = "MSH|^~\\&|LIS|HOSP|IARI|BB_LAB|20261126133005||ACK^R01^ACK|A6|P|2.5.1\rMSA|AR|{id}|busy\rERR|||207^Application internal error^HL70357|E\r";

async fn setup(script: Vec<Reply>, max_attempts: u32) -> (sqlx::PgPool, FakeLis, Sender, i64) {
    let pool = fresh_db().await;
    seed_decision(&pool, "CAP-1", "2+", ["2+", "2+", "3+", "2+", "1+"], true).await;
    let lis = FakeLis::start(script).await;
    let mut settings = lis_settings(&lis.addr);
    settings.max_attempts = max_attempts;
    settings.app_ack_timeout_ms = 300;
    let sender = Sender::new(pool.clone(), &settings).unwrap();
    let id = messages(&pool).await[0].id;
    (pool, lis, sender, id)
}

/// Steps until something other than Idle happens (backoff delays make some steps idle).
async fn busy(s: &mut Sender) -> Step {
    for _ in 0..300 {
        match s.step().await.unwrap() {
            Step::Idle => tokio::time::sleep(Duration::from_millis(10)).await,
            other => return other,
        }
    }
    panic!("sender stayed idle");
}

fn outcomes(rows: Vec<(i32, String, Option<String>)>) -> Vec<(String, Option<String>)> {
    rows.into_iter().map(|(_, o, c)| (o, c)).collect()
}

fn row(outcome: &str, code: Option<&str>) -> (String, Option<String>) {
    (outcome.to_string(), code.map(str::to_string))
}

#[tokio::test]
async fn ca_then_aa_is_delivered_and_ca_then_ae_is_parked() {
    let (pool, _lis, mut s, id) = setup(vec![Reply::Raw(vec![CA, AA])], 10).await;
    assert_eq!(s.step().await.unwrap(), Step::Delivered { id });
    assert_eq!(
        outcomes(attempts(&pool, id).await),
        vec![row("acked", Some("AA"))]
    );
    // The AE after a CA is the application's answer: it is not lost behind the CA.
    let (pool, lis, mut s, id) = setup(vec![Reply::Raw(vec![CA, AE])], 10).await;
    assert_eq!(s.step().await.unwrap(), Step::Parked { id });
    let m = &messages(&pool).await[0];
    assert_eq!(
        (m.state.as_str(), m.ack_code.as_deref()),
        ("failed", Some("AE"))
    );
    assert!(
        m.last_error.as_deref().unwrap().contains("ERR-3 103"),
        "{m:?}"
    );
    assert_eq!(lis.received().len(), 1);
}

/// CA and then no application ACK: no ACK in time. The same bytes go again; the LIS, which
/// committed the first copy, answers 205, and that counts as delivered.
#[tokio::test]
async fn a_duplicate_key_after_a_resend_is_delivered() {
    let (pool, lis, mut s, id) =
        setup(vec![Reply::Raw(vec![CA]), Reply::Raw(vec![AE_205])], 10).await;
    assert!(matches!(
        s.step().await.unwrap(),
        Step::Retrying {
            reason: "timeout",
            ..
        }
    ));
    assert_eq!(busy(&mut s).await, Step::Delivered { id });
    assert_eq!(
        outcomes(attempts(&pool, id).await),
        vec![
            row("commit_timeout", Some("CA")),
            row("acked_duplicate", Some("AE"))
        ]
    );
    let got = lis.received();
    assert_eq!((got.len(), &got[0]), (2, &got[1]), "resent byte for byte");
    assert_eq!(messages(&pool).await[0].state, "acked");
    // A plain timeout before it works the same way.
    let (pool, _lis, mut s, id) = setup(vec![Reply::Silence, Reply::Raw(vec![AE_205])], 10).await;
    assert!(matches!(
        s.step().await.unwrap(),
        Step::Retrying {
            reason: "timeout",
            ..
        }
    ));
    assert_eq!(busy(&mut s).await, Step::Delivered { id });
    assert_eq!(messages(&pool).await[0].state, "acked");
}

/// The AR form of the duplicate row, from a v2.4 LIS (205 in ERR-1), after the connection
/// dropped once our message was written: delivered. On a first send the same AR is only "any
/// other AR": resent, neither delivered nor parked.
#[tokio::test]
async fn an_ar_duplicate_key_after_a_drop_is_delivered_and_on_a_first_send_resent() {
    let (pool, lis, mut s, id) = setup(vec![Reply::Drop, Reply::Raw(vec![AR_ERR1_205])], 10).await;
    assert!(matches!(
        s.step().await.unwrap(),
        Step::Retrying { reason: "io", .. }
    ));
    assert_eq!(busy(&mut s).await, Step::Delivered { id });
    assert_eq!(
        outcomes(attempts(&pool, id).await),
        vec![row("dropped", None), row("acked_duplicate", Some("AR"))]
    );
    assert_eq!(messages(&pool).await[0].state, "acked");
    let got = lis.received();
    assert_eq!((got.len(), &got[0]), (2, &got[1]), "resent byte for byte");

    let (pool, _lis, mut s, id) = setup(vec![Reply::Raw(vec![AR_ERR1_205])], 10).await;
    assert!(matches!(
        s.step().await.unwrap(),
        Step::Retrying { reason: "ar", .. }
    ));
    assert_eq!(
        outcomes(attempts(&pool, id).await),
        vec![row("rejected_ar", Some("AR"))]
    );
    assert_eq!(messages(&pool).await[0].state, "pending");
}

/// Without an unanswered send before it, 205 is the LIS refusing a control id it has seen on
/// another message: that is an error to look at, not a delivery.
#[tokio::test]
async fn a_duplicate_key_on_a_first_send_is_parked() {
    let (pool, _lis, mut s, id) = setup(vec![Reply::Raw(vec![AE_205])], 10).await;
    assert_eq!(s.step().await.unwrap(), Step::Parked { id });
    assert_eq!(messages(&pool).await[0].state, "failed");
}

/// Configuration errors, wherever the LIS's version puts the code: ERR-3 (v2.5), ERR-1 (v2.4),
/// MSA-6 (v2.3), and a CR of the commit ACK: sending stops, everything stays queued.
#[tokio::test]
async fn configuration_errors_are_read_from_err3_err1_and_msa6() {
    for ack in [CR_203, AR_ERR1_200, AR_MSA6_201] {
        let (pool, lis, mut s, id) = setup(vec![Reply::Raw(vec![ack])], 10).await;
        seed_decision(&pool, "CAP-2", "neg", ["neg"; 5], false).await;
        assert_eq!(s.step().await.unwrap(), Step::Halted { id }, "{ack:?}");
        assert_eq!(s.step().await.unwrap(), Step::Idle);
        assert!(messages(&pool).await.iter().all(|m| m.state == "pending"));
        assert_eq!(attempts(&pool, id).await[0].1, "config_error");
        assert_eq!(lis.received().len(), 1);
    }
}

/// CE, and AR with any other error, are resent until `lis.max_attempts` sends; the last one
/// parks the message. Sends that never reach the LIS do not count.
#[tokio::test]
async fn refusals_are_capped_by_max_attempts_and_outages_are_not() {
    let (pool, lis, mut s, id) = setup(
        vec![
            Reply::Raw(vec![CE]),
            Reply::Raw(vec![AR_207]),
            Reply::Raw(vec![AR_207]),
        ],
        3,
    )
    .await;
    assert!(matches!(
        busy(&mut s).await,
        Step::Retrying { reason: "ce", .. }
    ));
    assert!(matches!(
        busy(&mut s).await,
        Step::Retrying { reason: "ar", .. }
    ));
    assert_eq!(busy(&mut s).await, Step::Parked { id });
    let m = &messages(&pool).await[0];
    assert_eq!((m.state.as_str(), m.attempts), ("failed", 3));
    assert!(
        m.last_error
            .as_deref()
            .unwrap()
            .contains("lis.max_attempts = 3"),
        "{m:?}"
    );
    assert_eq!(lis.received().len(), 3);

    let pool = fresh_db().await;
    seed_decision(&pool, "CAP-1", "neg", ["neg"; 5], false).await;
    let down = format!("127.0.0.1:{}", crate::ports::free_port());
    let mut settings = lis_settings(&down);
    settings.max_attempts = 2;
    let mut s = Sender::new(pool.clone(), &settings).unwrap();
    for _ in 0..5 {
        assert!(matches!(
            busy(&mut s).await,
            Step::Retrying { reason: "io", .. }
        ));
    }
    let m = &messages(&pool).await[0];
    assert_eq!(
        (m.state.as_str(), m.attempts),
        ("pending", 5),
        "an outage never parks"
    );
}

/// A supervisor resends a parked message: the same stored bytes go again under the same MSH-10,
/// the attempt names who asked, and the operation is on record. Park works by hand too.
#[tokio::test]
async fn resend_and_park_by_hand_are_recorded_with_who_asked() {
    let (pool, lis, mut s, id) = setup(vec![Reply::Raw(vec![AE])], 10).await;
    assert_eq!(s.step().await.unwrap(), Step::Parked { id });
    let req = ops::Request {
        by: "Dr. Weber (supervisor)",
        os_user: "labops",
        reason: Some("test code mapped at the LIS"),
    };
    assert!(matches!(
        ops::park(&pool, id, &req).await,
        Err(ops::OpError::WrongState { .. })
    ));
    ops::resend(&pool, id, &req).await.unwrap();
    assert_eq!(busy(&mut s).await, Step::Delivered { id });
    let got = lis.received();
    assert_eq!((got.len(), &got[0]), (2, &got[1]), "the same bytes again");
    let detail = ops::show(&pool, id).await.unwrap().unwrap();
    assert_eq!(detail.attempts.len(), 2);
    assert_eq!(detail.attempts[0].requested_by, None);
    assert_eq!(
        detail.attempts[1].requested_by.as_deref(),
        Some("Dr. Weber (supervisor)")
    );
    assert_eq!(
        (
            detail.operations.len(),
            detail.operations[0].action.as_str()
        ),
        (1, "resend")
    );
    assert_eq!(detail.operations[0].state_before, "failed");
    assert_eq!(detail.summary.state.as_str(), "acked");
    assert!(matches!(
        ops::resend(&pool, id, &req).await,
        Err(ops::OpError::WrongState { .. })
    ));

    seed_decision(&pool, "CAP-2", "neg", ["neg"; 5], false).await;
    let second = messages(&pool).await[1].id;
    ops::park(&pool, second, &req).await.unwrap();
    assert_eq!(
        s.step().await.unwrap(),
        Step::Idle,
        "a parked message is not sent"
    );
    let listed = ops::list(&pool, Some(iari::domain::DeliveryState::Failed), 10)
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![second]
    );
    assert!(
        listed[0]
            .last_error
            .as_deref()
            .unwrap()
            .starts_with("parked by Dr. Weber")
    );
    let anonymous = ops::Request { by: " ", ..req };
    assert!(matches!(
        ops::resend(&pool, second, &anonymous).await,
        Err(ops::OpError::Anonymous)
    ));
}

/// An LIS that ends its ACK frame with 0x1C alone and then waits: the ACK counts at once.
#[tokio::test]
async fn an_ack_frame_ended_by_0x1c_alone_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.ends_with(&[0x1C, 0x0D]) {
            let n = sock.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before a whole frame");
            got.extend_from_slice(&buf[..n]);
        }
        let id = msh10(&got[1..got.len() - 2]);
        let ack = AA.replace("{id}", &id);
        sock.write_all(&[&[0x0B][..], ack.as_bytes(), &[0x1C]].concat())
            .await
            .unwrap();
        // Keep the connection open, saying nothing more, until the test ends.
        let _ = sock.read(&mut buf).await;
    });
    let pool = fresh_db().await;
    seed_decision(&pool, "CAP-1", "neg", ["neg"; 5], false).await;
    let id = messages(&pool).await[0].id;
    let mut s = Sender::new(pool.clone(), &lis_settings(&addr)).unwrap();
    assert_eq!(s.step().await.unwrap(), Step::Delivered { id });
    assert_eq!(
        outcomes(attempts(&pool, id).await),
        vec![row("acked", Some("AA"))]
    );
}
