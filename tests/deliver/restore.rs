//! The restore drill: back up the database, deliver more results, restore the backup, deliver
//! again. The restore rewinds the control-id sequence; no MSH-10 the LIS saw may come again.

use crate::common::*;
use iari::deliver::{Sender, Step};
use std::process::Command;
use std::time::Duration;

/// Seeds `n` decisions named `<tag>-<i>` and sends their results to `lis` until none is pending.
async fn deliver(pool: &sqlx::PgPool, lis: &FakeLis, tag: &str, n: usize) {
    for i in 0..n {
        seed_decision(pool, &format!("{tag}-{i}"), "neg", ["neg"; 5], false).await;
    }
    let mut s = Sender::new(pool.clone(), &lis_settings(&lis.addr)).unwrap();
    for _ in 0..500 {
        if messages(pool).await.iter().all(|m| m.state != "pending") {
            return;
        }
        if s.step().await.unwrap() == Step::Idle {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    panic!("not delivered: {:?}", messages(pool).await);
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn no_control_id_is_reused_after_a_restore() {
    let (pool, url, _name) = crate::test_db::create("iari_test_restore", 4).await;
    let lis = FakeLis::start(vec![]).await;
    deliver(&pool, &lis, "BEFORE", 3).await;
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("backup.dump");
    run(Command::new("pg_dump")
        .args(["--format=custom", "--file"])
        .arg(&dump)
        .arg(&url));
    deliver(&pool, &lis, "LOST", 3).await;
    let lost: Vec<String> = lis.control_ids()[3..].to_vec();
    pool.close().await;
    // Restore over the same database (its OID and name stay: only the clock tells the
    // incarnations apart).
    run(Command::new("pg_restore")
        .args(["--clean", "--if-exists", "--exit-on-error", "--dbname"])
        .arg(&url)
        .arg(&dump));
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .unwrap();
    assert_eq!(
        messages(&pool).await.len(),
        3,
        "the restore dropped the later rows"
    );
    deliver(&pool, &lis, "AFTER", 3).await;
    let sent = lis.control_ids();
    assert_eq!(sent.len(), 9);
    let after: Vec<String> = sent[6..].to_vec();
    // The sequence really was rewound: the new ids end in the lost ids' sequence numbers ...
    let tail = |ids: &[String]| ids.iter().map(|c| c[12..].to_string()).collect::<Vec<_>>();
    assert_eq!(tail(&after), tail(&lost), "{lost:?} {after:?}");
    // ... and still every MSH-10 the LIS received is different, and at most 20 characters.
    let mut unique = sent.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), sent.len(), "an MSH-10 came twice: {sent:?}");
    assert!(sent.iter().all(|c| c.len() == 20), "{sent:?}");
    pool.close().await;
}
