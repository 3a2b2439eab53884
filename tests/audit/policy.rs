//! The release policy against a real PostgreSQL: signed activation (a director only), suspension
//! and resumption, the policy in force as workers read it, the chain over policy signatures, and
//! `simulate` over seeded decisions with counts computed by hand.

use crate::common::{Seed, TestDb, seed};
use iari::audit::{AuditError, verify};
use iari::auth::{Principal, users};
use iari::domain::{Meaning, Role};
use iari::release::sign::{PolicyAction, sign_policy};
use iari::release::simulate::{Tally, stored_cases};
use iari::release::store::{active, follow};
use iari::release::{ActivePolicy, Policy, PolicySnapshot};
use iari_kit::seed::{PASSWORD, review, signer};
use sqlx::PgPool;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const LENIENT: &[u8] = b"version = \"2026-12.1\"\nname = \"four of five\"\n\
[[rule]]\nagreement_min = 0.8\nflags_none = [\"disagree_nonadjacent\", \"low_confidence\"]\noutcome = \"final\"\n\
[[rule]]\noutcome = \"review\"\n";

async fn account(pool: &PgPool, username: &str, role: Role) -> Principal {
    let user_id = users::add(
        pool,
        username,
        &format!("Kit {username}"),
        role,
        PASSWORD,
        false,
        "test",
    )
    .await
    .unwrap();
    Principal {
        user_id,
        username: username.into(),
        full_name: format!("Kit {username}"),
        role,
    }
}

#[tokio::test]
async fn activation_needs_a_director_and_suspension_a_supervisor() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let default = Policy::shipped_default();
    assert_eq!(
        active(pool).await.unwrap(),
        PolicySnapshot::new(default.clone(), false)
    );
    let supervisor = signer(pool, "Sam Supervisor").await;
    let tech = account(pool, "tina", Role::Technologist).await;
    let director = account(pool, "dora", Role::Director).await;
    let activate = PolicyAction::Activate(LENIENT.to_vec());
    for who in [&supervisor, &tech] {
        let e = sign_policy(pool, who, &activate, None).await.unwrap_err();
        assert!(matches!(e, AuditError::Forbidden(_)), "{e}");
        assert!(
            e.to_string().contains("may not sign policy_activated"),
            "{e}"
        );
    }
    assert_eq!(
        active(pool).await.unwrap().policy,
        default,
        "nothing changed"
    );
    // Not a policy: refused even for a director.
    let bad = PolicyAction::Activate(b"version = \"1\"\nname = \"x\"\n".to_vec());
    assert!(matches!(
        sign_policy(pool, &director, &bad, None).await,
        Err(AuditError::Invalid(_))
    ));

    let signed = sign_policy(
        pool,
        &director,
        &activate,
        Some("approved at the lab meeting"),
    )
    .await
    .unwrap();
    let lenient = Policy::parse(LENIENT).unwrap();
    assert_eq!(signed.meaning, Meaning::PolicyActivated);
    assert_eq!(signed.policy_sha256, lenient.sha256.to_string());
    assert_eq!(
        active(pool).await.unwrap(),
        PolicySnapshot::new(lenient.clone(), false)
    );
    let row: (Option<i64>, Vec<u8>, String, Option<String>) = sqlx::query_as(
        "SELECT decision_id, decision_row_hash, role, reason_text FROM signatures WHERE id = $1",
    )
    .bind(signed.signature_id)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        row,
        (
            None,
            lenient.sha256.as_bytes().to_vec(),
            "director".into(),
            Some("approved at the lab meeting".into())
        )
    );

    // Suspension: a technologist may not; a supervisor may; twice is refused; resume lifts it.
    let e = sign_policy(pool, &tech, &PolicyAction::Suspend, None)
        .await
        .unwrap_err();
    assert!(matches!(e, AuditError::Forbidden(_)), "{e}");
    sign_policy(pool, &supervisor, &PolicyAction::Suspend, None)
        .await
        .unwrap();
    assert_eq!(
        active(pool).await.unwrap(),
        PolicySnapshot::new(lenient.clone(), true)
    );
    let e = sign_policy(pool, &director, &PolicyAction::Suspend, None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("already suspended"), "{e}");
    sign_policy(pool, &director, &PolicyAction::Resume, None)
        .await
        .unwrap();
    assert_eq!(
        active(pool).await.unwrap(),
        PolicySnapshot::new(lenient.clone(), false)
    );
    let e = sign_policy(pool, &supervisor, &PolicyAction::Resume, None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not suspended"), "{e}");

    // Every policy signature is in the chain, and the chain verifies.
    seed(pool, &Seed::default()).await;
    let r = verify(pool).await.unwrap();
    assert_eq!(r.first_break, None);
    assert_eq!(r.signatures, 3);
    // A policy signature changed behind the database's back is found.
    let mut tx = pool.begin().await.unwrap();
    for sql in [
        "ALTER TABLE signatures DISABLE TRIGGER signatures_append_only",
        "UPDATE signatures SET role = 'supervisor' WHERE meaning = 'policy_activated'",
        "ALTER TABLE signatures ENABLE TRIGGER signatures_append_only",
    ] {
        sqlx::query(sql).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    let r = verify(pool).await.unwrap();
    let b = r.first_break.expect("the change is found");
    assert_eq!(b.table, "signatures", "{b}");
    db.drop().await;
}

#[tokio::test]
async fn a_running_worker_follows_an_activation_within_ten_seconds() {
    let db = TestDb::new().await;
    let handle = ActivePolicy::new(active(&db.pool).await.unwrap());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(follow(db.pool.clone(), handle.clone(), cancel.clone()));
    let director = account(&db.pool, "dora", Role::Director).await;
    let before = handle.snapshot();
    sign_policy(
        &db.pool,
        &director,
        &PolicyAction::Activate(LENIENT.to_vec()),
        None,
    )
    .await
    .unwrap();
    let t0 = Instant::now();
    while handle.snapshot() == before && t0.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        handle.snapshot().policy,
        Policy::parse(LENIENT).unwrap(),
        "release.md: within 10 s"
    );
    sign_policy(&db.pool, &director, &PolicyAction::Suspend, None)
        .await
        .unwrap();
    let t0 = Instant::now();
    while !handle.snapshot().suspended && t0.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(handle.snapshot().suspended);
    // Activating another policy does not lift the suspension: only a signed resume does.
    let default = iari::release::policy::DEFAULT_POLICY.to_vec();
    sign_policy(&db.pool, &director, &PolicyAction::Activate(default), None)
        .await
        .unwrap();
    assert_eq!(
        active(&db.pool).await.unwrap(),
        PolicySnapshot::new(Policy::shipped_default(), true)
    );
    cancel.cancel();
    task.await.unwrap();
    db.drop().await;
}

/// Eight seeded decisions; the counts below are worked out by hand from the seeds.
#[tokio::test]
async fn simulate_on_seeded_decisions_gives_the_counts_by_hand() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let unanimous = |g: &'static str| Seed {
        grade: g,
        votes: [g; 5],
        ..Seed::default()
    };
    // a: final 2+, confirmed 2+ (right).
    let a = seed(pool, &unanimous("2+")).await;
    review(pool, a, "2+", "Ann Reviewer", None).await;
    // b: final neg, corrected to 1+ (serious: neg against positive).
    let b = seed(pool, &unanimous("neg")).await;
    review(pool, b, "1+", "Ann Reviewer", None).await;
    // c: final 3+, corrected to 2+ (an error, one grade apart: not serious).
    let c = seed(pool, &unanimous("3+")).await;
    review(pool, c, "2+", "Ann Reviewer", None).await;
    // d: final 1+, never reviewed (truth unknown).
    seed(pool, &unanimous("1+")).await;
    // e: four 3+ and one 2+: review under the default; confirmed... then corrected to 4+.
    let e = seed(
        pool,
        &Seed {
            grade: "3+",
            votes: ["3+", "3+", "3+", "3+", "2+"],
            flags: vec!["disagree_adjacent"],
            needs_review: true,
            ..Seed::default()
        },
    )
    .await;
    review(pool, e, "3+", "Ann Reviewer", None).await;
    review(pool, e, "4+", "Bob Reviewer", None).await;
    // f: unanimous 4+ on a plate that failed QC: withheld whatever the policy says.
    seed(
        pool,
        &Seed {
            flags: vec!["qc_failed"],
            needs_review: true,
            ..unanimous("4+")
        },
    )
    .await;
    // g, h: unanimous and unflagged when stored, on plates whose QC settled afterwards: failed
    // (g is withheld) and missing its controls (h went out for review). The plates' state is
    // set as plate QC leaves it (its rows are state, not chained).
    seed(
        pool,
        &Seed {
            plate: "PF".into(),
            ..unanimous("1+")
        },
    )
    .await;
    seed(
        pool,
        &Seed {
            plate: "PM".into(),
            ..unanimous("1+")
        },
    )
    .await;
    sqlx::query(
        "INSERT INTO plates (plate_id, qc_state, deadline, settled_at, detail) VALUES \
         ('PF', 'failed', now(), now(), 'negative_control H12 read 2+'), \
         ('PM', 'missing', now(), now(), 'no positive control')",
    )
    .execute(pool)
    .await
    .unwrap();

    let cases = stored_cases(pool, None, None).await.unwrap();
    assert_eq!(cases.len(), 8);
    let t = Tally::of(&Policy::shipped_default(), &cases);
    assert_eq!(
        t,
        Tally {
            decisions: 8,
            released_final: 4, // a b c d
            to_review: 4,      // e f g h
            withheld: 2,       // f g
            known: 4,          // a b c e (e: its latest review, 4+)
            known_final: 3,    // a b c
            errors_final: 2,   // b c
            serious_final: 1,  // b
        }
    );
    // Four of five, without a far dissent: e goes out final too, and it was wrong (3+, truly 4+).
    let t = Tally::of(&Policy::parse(LENIENT).unwrap(), &cases);
    assert_eq!(
        (
            t.released_final,
            t.to_review,
            t.known_final,
            t.errors_final,
            t.serious_final
        ),
        (5, 3, 4, 3, 1)
    );
    let s = t.shares();
    assert_eq!((s.errors_final.k, s.errors_final.n), (3, 4));
    assert!((s.released_final.share - 5.0 / 8.0).abs() < 1e-12);
    assert!(s.serious_final.low < 0.25 && 0.25 < s.serious_final.high);
    // The time window: nothing was decided in the future.
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    assert!(
        stored_cases(pool, Some(later), None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        stored_cases(pool, None, Some(later)).await.unwrap().len(),
        8
    );
    db.drop().await;
}

/// The commands as a user runs them: `check` passes the default and fails a policy with a rule
/// that can never match; `activate` asks for the signer and refuses a supervisor; `suspend` and
/// `resume` are signed; `simulate` runs over the stored decisions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_commands() {
    use crate::common::{PASSWORD, run_cli, run_cli_with, user};
    use std::process::ExitCode;
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let default = concat!(env!("CARGO_MANIFEST_DIR"), "/config/policy/default.toml");
    assert_eq!(
        run_cli(&db, &["policy", "check", default]),
        ExitCode::SUCCESS
    );
    let tie_final = dir.path().join("tie.toml");
    std::fs::write(
        &tie_final,
        "version = \"1\"\nname = \"t\"\n[[rule]]\nflags_any = [\"tie\"]\noutcome = \"final\"\n[[rule]]\noutcome = \"review\"\n",
    )
    .unwrap();
    assert_eq!(
        run_cli(&db, &["policy", "check", tie_final.to_str().unwrap()]),
        ExitCode::FAILURE
    );
    let lenient = dir.path().join("lenient.toml");
    std::fs::write(&lenient, LENIENT).unwrap();
    let file = lenient.to_str().unwrap();
    user(&db.pool, "sam", Role::Supervisor).await;
    user(&db.pool, "dora", Role::Director).await;
    let answers = |u: &str| format!("{u}\n{PASSWORD}\n");
    assert_eq!(
        run_cli_with(&db, &["policy", "activate", file], &answers("sam")),
        ExitCode::FAILURE
    );
    assert_eq!(
        active(&db.pool).await.unwrap().policy,
        Policy::shipped_default()
    );
    // A wrong password signs nothing.
    assert_eq!(
        run_cli_with(
            &db,
            &["policy", "activate", file],
            "dora\nnot the password\n"
        ),
        ExitCode::FAILURE
    );
    assert_eq!(
        active(&db.pool).await.unwrap().policy,
        Policy::shipped_default()
    );
    assert_eq!(
        run_cli_with(
            &db,
            &["policy", "activate", file, "--comment", "ok"],
            &answers("dora")
        ),
        ExitCode::SUCCESS
    );
    assert_eq!(
        active(&db.pool).await.unwrap().policy,
        Policy::parse(LENIENT).unwrap()
    );
    assert_eq!(
        run_cli_with(&db, &["policy", "suspend"], &answers("sam")),
        ExitCode::SUCCESS
    );
    assert!(active(&db.pool).await.unwrap().suspended);
    assert_eq!(
        run_cli_with(&db, &["policy", "resume"], &answers("sam")),
        ExitCode::SUCCESS
    );
    assert!(!active(&db.pool).await.unwrap().suspended);
    seed(&db.pool, &Seed::default()).await;
    assert_eq!(
        run_cli(
            &db,
            &["policy", "simulate", default, "--since", "2026-01-01"]
        ),
        ExitCode::SUCCESS
    );
    assert_eq!(
        run_cli(&db, &["policy", "simulate", default, "--format", "json"]),
        ExitCode::SUCCESS
    );
    assert_eq!(run_cli(&db, &["policy", "show"]), ExitCode::SUCCESS);
    db.drop().await;
}

/// The least privilege each process logs in with: the workstation's login (which the signing
/// commands use) stores and signs a policy; a worker's reads the policy in force but can neither
/// store a policy nor sign; an auditor's reads.
#[tokio::test]
async fn policy_rights_follow_the_database_roles() {
    let db = TestDb::new().await;
    let director = account(&db.pool, "dora", Role::Director).await;
    let pool_as = |url: String| async move { PgPool::connect(&url).await.unwrap() };
    let workstation = pool_as(db.login_url("iari_workstation").await).await;
    let worker = pool_as(db.login_url("iari_worker").await).await;
    let auditor = pool_as(db.login_url("iari_auditor").await).await;
    let activate = PolicyAction::Activate(LENIENT.to_vec());
    let e = sign_policy(&worker, &director, &activate, None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("permission denied"), "{e}");
    sign_policy(&workstation, &director, &activate, None)
        .await
        .unwrap();
    sign_policy(&workstation, &director, &PolicyAction::Suspend, None)
        .await
        .unwrap();
    let lenient = PolicySnapshot::new(Policy::parse(LENIENT).unwrap(), true);
    assert_eq!(active(&worker).await.unwrap(), lenient);
    assert_eq!(active(&auditor).await.unwrap(), lenient);
    for p in [workstation, worker, auditor] {
        p.close().await;
    }
    db.drop().await;
}

/// `simulate --labelled`: the bundled samples (synthetic) classified, the folder's label as the
/// truth, the file and the policy in force side by side (here both the default, so equal).
#[tokio::test]
async fn simulate_a_labelled_folder() {
    let db = TestDb::new().await;
    let repo = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_iari"))
        .args([
            "policy",
            "simulate",
            "config/policy/default.toml",
            "--labelled",
            "onnx/samples",
        ])
        .args(["--format", "json"])
        .current_dir(repo)
        .env("IARI__DATABASE__URL", &db.url)
        .env("IARI__INFERENCE__DEVICE", "cpu")
        .env("IARI__LOG__LEVEL", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = &v["policy"]["tally"];
    assert_eq!(
        (t["decisions"].as_u64(), t["known"].as_u64()),
        (Some(100), Some(100))
    );
    assert_eq!(
        t["released_final"].as_u64().unwrap() + t["to_review"].as_u64().unwrap(),
        100
    );
    assert!(t["errors_final"].as_u64() <= t["known_final"].as_u64());
    assert_eq!(v["policy"]["tally"], v["active"]["tally"]);
    assert_eq!(v["policy"]["stamp"], v["active"]["stamp"]);
    let s = &v["policy"]["shares"]["serious_final"];
    assert_eq!(s["n"], 100);
    assert!(s["low"].as_f64() <= s["share"].as_f64() && s["share"].as_f64() <= s["high"].as_f64());
    db.drop().await;
}
