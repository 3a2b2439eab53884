use super::*;
use crate::deliver::ack::{AckCode, ErrorSource};

fn claimed(counted: i32, resent: bool) -> Claimed {
    Claimed {
        id: 7,
        control_id: "IARI-7".into(),
        attempts: 2,
        counted,
        resent_after_unanswered: resent,
        payload: None,
    }
}

fn ack(code: AckCode, control_id: &str, error_code: Option<u16>) -> Delivery {
    Delivery::Ack(Ack {
        code,
        control_id: control_id.into(),
        error_code,
        error_source: error_code.map(|_| ErrorSource::Err3),
        text: "why".into(),
    })
}

const LIMITS: Limits = Limits {
    after: Duration::from_secs(4),
    max_attempts: 5,
};

fn run_with(c: Claimed, result: Result<Delivery, SendError>) -> (Attempt, Next, Step) {
    settle(&c, Utc::now(), result, LIMITS)
}

fn run(result: Result<Delivery, SendError>) -> (Attempt, Next, Step) {
    run_with(claimed(0, false), result)
}

#[test]
fn each_send_result_gets_its_row_of_the_table() {
    let after = LIMITS.after;
    let retrying = |reason| Step::Retrying {
        id: 7,
        reason,
        after,
    };
    let (delivered, parked) = (Step::Delivered { id: 7 }, Step::Parked { id: 7 });
    let ca = Ack {
        code: AckCode::CA,
        control_id: "IARI-7".into(),
        error_code: None,
        error_source: None,
        text: String::new(),
    };
    let rows = [
        (
            Ok(ack(AckCode::AA, "IARI-7", None)),
            "acked",
            false,
            Next::Acked,
            delivered.clone(),
        ),
        (
            Ok(ack(AckCode::AE, "IARI-7", None)),
            "error_ae",
            false,
            Next::Failed,
            parked.clone(),
        ),
        (
            Ok(ack(AckCode::AR, "IARI-7", Some(207))),
            "rejected_ar",
            true,
            Next::RetryAfter(after),
            retrying("ar"),
        ),
        (
            Ok(ack(AckCode::CE, "IARI-7", None)),
            "commit_error",
            true,
            Next::RetryAfter(after),
            retrying("ce"),
        ),
        (
            Ok(ack(AckCode::CR, "IARI-7", None)),
            "commit_error",
            true,
            Next::RetryAfter(after),
            retrying("ce"),
        ),
        (
            Ok(ack(AckCode::AR, "IARI-7", Some(201))),
            "config_error",
            false,
            Next::Hold,
            Step::Halted { id: 7 },
        ),
        (
            Ok(ack(AckCode::CR, "IARI-7", Some(202))),
            "config_error",
            false,
            Next::Hold,
            Step::Halted { id: 7 },
        ),
        // A duplicate key without an earlier unanswered send is an ordinary AE.
        (
            Ok(ack(AckCode::AE, "IARI-7", Some(205))),
            "error_ae",
            false,
            Next::Failed,
            parked,
        ),
        // An ACK for another message is not ours to accept: the message goes again.
        (
            Ok(ack(AckCode::AA, "IARI-8", None)),
            "rejected_ar",
            true,
            Next::RetryAfter(after),
            retrying("ar"),
        ),
        (
            Err(SendError::Timeout(Duration::from_secs(1))),
            "timeout",
            true,
            Next::RetryAfter(after),
            retrying("timeout"),
        ),
        (
            Err(SendError::Dropped("closed".into())),
            "dropped",
            true,
            Next::RetryAfter(after),
            retrying("io"),
        ),
        (
            Err(SendError::CommitOnly(ca, Duration::from_secs(1))),
            "commit_timeout",
            true,
            Next::RetryAfter(after),
            retrying("timeout"),
        ),
        (
            Err(SendError::Io("refused".into())),
            "io_error",
            false,
            Next::RetryAfter(after),
            retrying("io"),
        ),
        (
            Ok(Delivery::Written("/tmp/x.hl7".into())),
            "acked",
            false,
            Next::Acked,
            delivered,
        ),
    ];
    for (result, outcome, counts, next, step) in rows {
        let (a, n, s) = run(result);
        assert_eq!((a.outcome, a.counts, n, &s), (outcome, counts, next, &step));
    }
    let (a, _, _) = run(Ok(ack(AckCode::AE, "IARI-7", None)));
    assert_eq!(
        (a.ack_code.as_deref(), a.error.as_deref()),
        (Some("AE"), Some("AE why"))
    );
    let (a, _, _) = run(Ok(ack(AckCode::AR, "IARI-7", Some(201))));
    assert_eq!(a.error.as_deref(), Some("AR ERR-3 201: why"));
    let (a, _, _) = run(Err(SendError::Timeout(Duration::from_secs(1))));
    assert!(a.ack_code.is_none() && a.error.is_some());
}

#[test]
fn a_duplicate_after_an_unanswered_send_is_delivered() {
    for code in [AckCode::AE, AckCode::AR] {
        let (a, n, s) = run_with(claimed(1, true), Ok(ack(code, "IARI-7", Some(205))));
        assert_eq!(
            (a.outcome, n, s),
            ("acked_duplicate", Next::Acked, Step::Delivered { id: 7 })
        );
    }
}

#[test]
fn the_send_that_reaches_max_attempts_parks_and_outages_never_do() {
    let refused = || Ok(ack(AckCode::AR, "IARI-7", None));
    let (_, n, _) = run_with(claimed(3, false), refused());
    assert_eq!(n, Next::RetryAfter(LIMITS.after), "4th of 5");
    let (a, n, s) = run_with(claimed(4, false), refused());
    assert_eq!((n, s), (Next::Failed, Step::Parked { id: 7 }));
    assert!(a.error.unwrap().contains("lis.max_attempts = 5"));
    let (_, n, _) = run_with(
        claimed(4, false),
        Err(SendError::Timeout(Duration::from_secs(1))),
    );
    assert_eq!(n, Next::Failed, "an unanswered send counts");
    let (_, n, _) = run_with(claimed(99, false), Err(SendError::Io("refused".into())));
    assert_eq!(n, Next::RetryAfter(LIMITS.after), "an outage never parks");
}
