//! A retracted result goes to the LIS as a withdrawal under the same filler number, after the
//! messages before it, naming the grade the LIS holds (`store::outbox::enqueue_withdrawal`; the
//! retraction's signature itself is the workstation's).

use crate::common::*;
use iari::deliver::{Sender, Step};
use iari::domain::FillerNumber;
use std::time::Duration;

#[tokio::test]
async fn a_withdrawal_follows_its_result_and_names_the_grade_the_lis_holds() {
    let pool = fresh_db().await;
    let d = seed_decision(&pool, "CAP-1", "2+", ["2+", "2+", "3+", "2+", "1+"], true).await;
    seed_review(&pool, d, "3+", "F").await;
    let mut tx = pool.begin().await.unwrap();
    let filler = FillerNumber::for_decision(d);
    iari::store::outbox::enqueue_withdrawal(&mut tx, d, &filler, Some("wrong patient\non plate"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let lis = FakeLis::start(vec![]).await;
    let mut s = Sender::new(pool.clone(), &lis_settings(&lis.addr)).unwrap();
    for _ in 0..100 {
        if messages(&pool).await.iter().all(|m| m.state == "acked") {
            break;
        }
        if s.step().await.unwrap() == Step::Idle {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let rows = messages(&pool).await;
    assert_eq!(rows.len(), 3);
    assert_eq!(
        lis.control_ids(),
        rows.iter()
            .map(|m| m.control_id.clone())
            .collect::<Vec<_>>(),
        "original, review, withdrawal: in that order"
    );
    let text = String::from_utf8(lis.received()[2].to_vec()).unwrap();
    let filler_field = format!("|{}^IARI|", filler.as_str());
    assert!(text.contains(&filler_field), "{text}");
    assert!(
        text.contains("|3+^3+ adherence^99IAR|||A|0.2||W|"),
        "the reviewed grade: {text}"
    );
    assert!(
        text.contains("NTE|2|L|wrong patient\\.br\\on plate|"),
        "{text}"
    );
    assert!(!text.contains("by manual review"), "{text}");
    crate::values::assert_valid(&[("withdrawal.hl7".into(), text)]);
}
