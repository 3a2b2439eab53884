//! `audit list`: every filter, stable keyset paging, refusals, and hostile values as data.

use crate::common::{Seed, TestDb, count, deliver, seed};
use iari::audit::{AuditError, Filter, list};
use iari::domain::{DeliveryState, Flag, Grade, ResultStatus};

fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
    s.parse().unwrap()
}

async fn ids(db: &TestDb, f: Filter) -> Vec<i64> {
    list(&db.pool, &f)
        .await
        .unwrap()
        .items
        .iter()
        .map(|d| d.id)
        .collect()
}

#[tokio::test]
async fn each_filter_selects_its_rows() {
    let db = TestDb::new().await;
    let a = seed(
        &db.pool,
        &Seed {
            capture: "CAP-A".into(),
            accession: "ACC-A".into(),
            decided_at: Some(at("2026-11-24T08:00:00Z")),
            ..Seed::default()
        },
    )
    .await;
    // Each delivered right after its seed: the sender takes the oldest due message first.
    deliver(&db.pool, a, "AA").await;
    let b = seed(
        &db.pool,
        &Seed {
            plate: "P2".into(),
            well: "B7".into(),
            grade: "neg",
            votes: ["neg", "neg", "neg", "1+", "neg"],
            flags: vec!["disagree_adjacent"],
            needs_review: true,
            decided_at: Some(at("2026-11-25T09:30:00Z")),
            ..Seed::default()
        },
    )
    .await;
    deliver(&db.pool, b, "AE").await;
    let c = seed(
        &db.pool,
        &Seed {
            ensemble_version: "ENS-2.0.0".into(),
            model_version: "2.1.0".into(),
            grade: "4+",
            votes: ["4+"; 5],
            decided_at: Some(at("2026-11-26T23:59:59Z")),
            ..Seed::default()
        },
    )
    .await;

    let f = |build: fn(&mut Filter)| {
        let mut f = Filter::default();
        build(&mut f);
        f
    };
    assert_eq!(ids(&db, Filter::default()).await, vec![a, b, c]);
    assert_eq!(
        ids(&db, f(|f| f.capture = Some("CAP-A".into()))).await,
        vec![a]
    );
    assert_eq!(
        ids(&db, f(|f| f.accession = Some("ACC-A".into()))).await,
        vec![a]
    );
    assert_eq!(ids(&db, f(|f| f.plate = Some("P2".into()))).await, vec![b]);
    assert_eq!(
        ids(&db, f(|f| f.well = Some("b07".into()))).await,
        vec![b],
        "well is normalised"
    );
    assert_eq!(ids(&db, f(|f| f.grade = Some("neg".into()))).await, vec![b]);
    assert_eq!(ids(&db, f(|f| f.flagged = Some(true))).await, vec![b]);
    assert_eq!(ids(&db, f(|f| f.flagged = Some(false))).await, vec![a, c]);
    assert_eq!(
        ids(&db, f(|f| f.delivery = Some("acked".into()))).await,
        vec![a]
    );
    assert_eq!(
        ids(&db, f(|f| f.delivery = Some("failed".into()))).await,
        vec![b]
    );
    assert_eq!(
        ids(&db, f(|f| f.delivery = Some("pending".into()))).await,
        vec![c]
    );
    assert_eq!(
        ids(&db, f(|f| f.model_version = Some("ENS-2.0.0".into()))).await,
        vec![c]
    );
    assert_eq!(
        ids(&db, f(|f| f.model_version = Some("2.1.0".into()))).await,
        vec![c],
        "sub-model version"
    );
    assert_eq!(
        ids(&db, f(|f| f.since = Some("2026-11-25".into()))).await,
        vec![b, c]
    );
    assert_eq!(
        ids(&db, f(|f| f.until = Some("2026-11-25".into()))).await,
        vec![a, b],
        "a date includes its whole day"
    );
    assert_eq!(
        ids(&db, f(|f| f.until = Some("2026-11-25T09:30:00Z".into()))).await,
        vec![a, b],
        "a timestamp is inclusive"
    );
    assert_eq!(
        ids(
            &db,
            f(|f| f.since = Some("2026-11-25T10:30:00+01:00".into()))
        )
        .await,
        vec![b, c],
        "offsets respected"
    );
    let page = list(&db.pool, &f(|f| f.flagged = Some(true)))
        .await
        .unwrap();
    let row = &page.items[0];
    assert_eq!(
        (row.plate_id.as_str(), row.well.as_str(), row.grade),
        ("P2", "B7", Grade::Neg)
    );
    assert_eq!(row.flags, vec![Flag::DisagreeAdjacent]);
    assert_eq!(
        (row.delivery, row.result_status),
        (Some(DeliveryState::Failed), Some(ResultStatus::Preliminary))
    );
    db.drop().await;
}

#[tokio::test]
async fn keyset_paging_walks_every_row_once_in_stable_order() {
    let db = TestDb::new().await;
    let mut expected = Vec::new();
    // Several rows share a decided_at: the id breaks the tie, so pages never skip or repeat.
    for i in 0..7 {
        let t = if i % 2 == 0 {
            "2026-11-26T10:00:00Z"
        } else {
            "2026-11-26T09:00:00Z"
        };
        expected.push((
            at(t),
            seed(
                &db.pool,
                &Seed {
                    decided_at: Some(at(t)),
                    ..Seed::default()
                },
            )
            .await,
        ));
    }
    expected.sort();
    let expected: Vec<i64> = expected.into_iter().map(|(_, id)| id).collect();
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = list(
            &db.pool,
            &Filter {
                limit: Some(3),
                after,
                ..Filter::default()
            },
        )
        .await
        .unwrap();
        seen.extend(page.items.iter().map(|d| d.id));
        pages += 1;
        match page.next_after {
            Some(a) => after = Some(a),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);
    // Backdated by the kit, yet written by the product's INSERT: the chain holds.
    let r = iari::audit::verify(&db.pool).await.unwrap();
    assert_eq!((r.first_break, r.decisions), (None, 7));
    db.drop().await;
}

#[tokio::test]
async fn invalid_filter_values_are_refused_with_the_reason() {
    let db = TestDb::new().await;
    let cases = [
        (
            Filter {
                grade: Some("5+".into()),
                ..Filter::default()
            },
            "invalid grade",
        ),
        (
            Filter {
                delivery: Some("sent".into()),
                ..Filter::default()
            },
            "invalid delivery",
        ),
        (
            Filter {
                since: Some("yesterday".into()),
                ..Filter::default()
            },
            "since",
        ),
        (
            Filter {
                until: Some("2026-13-01".into()),
                ..Filter::default()
            },
            "until",
        ),
        (
            Filter {
                limit: Some(0),
                ..Filter::default()
            },
            "limit",
        ),
        (
            Filter {
                limit: Some(10_001),
                ..Filter::default()
            },
            "limit",
        ),
    ];
    for (f, needle) in cases {
        match list(&db.pool, &f).await {
            Err(AuditError::Invalid(m)) => {
                assert!(m.contains(needle), "{m:?} should mention {needle}")
            }
            other => panic!("expected a refusal mentioning {needle}, got {other:?}"),
        }
    }
    db.drop().await;
}

#[tokio::test]
async fn hostile_filter_values_are_only_data() {
    let db = TestDb::new().await;
    let id = seed(&db.pool, &Seed::default()).await;
    let hostile = [
        "'; DROP TABLE decisions; --",
        "' OR '1'='1",
        "x' UNION SELECT * FROM images --",
        "\\x00\u{0}",
        "%",
        "A1' OR well LIKE '%",
    ];
    for h in hostile {
        let h = Some(h.to_string());
        for f in [
            Filter {
                capture: h.clone(),
                ..Filter::default()
            },
            Filter {
                accession: h.clone(),
                ..Filter::default()
            },
            Filter {
                plate: h.clone(),
                ..Filter::default()
            },
            Filter {
                well: h.clone(),
                ..Filter::default()
            },
            Filter {
                model_version: h.clone(),
                ..Filter::default()
            },
        ] {
            // A NUL byte is refused by PostgreSQL as text; anything else must simply match nothing.
            match list(&db.pool, &f).await {
                Ok(page) => assert!(page.items.is_empty(), "{f:?} matched rows"),
                Err(e) => assert!(
                    !e.is_transient() && h.as_deref().unwrap().contains('\0'),
                    "{e}"
                ),
            }
        }
        assert!(
            list(
                &db.pool,
                &Filter {
                    grade: h.clone(),
                    ..Filter::default()
                }
            )
            .await
            .is_err()
        );
    }
    assert_eq!(count(&db.pool, "decisions").await, 1);
    assert_eq!(ids(&db, Filter::default()).await, vec![id]);
    assert!(
        iari::audit::verify(&db.pool)
            .await
            .unwrap()
            .first_break
            .is_none()
    );
    db.drop().await;
}
