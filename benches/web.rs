//! `make bench-web`: the review workstation's server time over a large history.
//!
//! Seeds `BENCH_WEB_N` decisions (default 1,000,000; one in `BENCH_WEB_REVIEW_EVERY`, default
//! 100, awaiting review: 10,000) through the worker's batch write (`store::decisions::
//! write_batch`, so every index, trigger and hash-chain link is the product's) into its own
//! database `iari_bench_web` (kept between runs; seeding tops it up to N). Captures fill 96-well
//! plates; the images are 1,000 of the bundled synthetic samples with a unique trailer, shared
//! round-robin (a real lab stores one per capture; the image route reads one row either way).
//! Then it times, in process (the workstation's router, no socket, a supervisor's session), the
//! worklist's first page, the decision page and the well image of random decisions, each
//! `BENCH_WEB_REQUESTS` times (default 1,000) after 50 warm-up requests, and prints p50 / p95 /
//! p99 / max server time in ms. All data are synthetic.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use iari::auth::{Principal, sessions, users};
use iari::domain::{Role, Sha256Digest};
use iari::store::decisions::{ImageRow, NewDecision, Timings, write_batch};
use iari_kit::seed::Seed;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

const BATCH: usize = 500;
const GRADES: [&str; 5] = ["neg", "1+", "2+", "3+", "4+"];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// 1,000 distinct PNG images: the bundled samples, each with a numbered trailer after IEND.
fn images() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("onnx/samples");
    let mut samples = Vec::new();
    for g in ["neg", "1+", "2+", "3+", "4+"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(g))
            .expect("onnx/samples")
            .map(|e| e.expect("a sample").path())
            .collect();
        files.sort();
        samples.extend(
            files
                .into_iter()
                .map(|p| std::fs::read(p).expect("a sample")),
        );
    }
    (0..1000)
        .map(|i| {
            let mut b = samples[i % samples.len()].clone();
            b.extend_from_slice(format!("bench-web {i}").as_bytes());
            b
        })
        .collect()
}

/// The synthetic decision number `i`: plate `W{i / 96}`, wells row by row, grades in turn.
fn seed_of(i: usize, review_every: usize) -> Seed {
    let g = GRADES[i % 5];
    // The second opinion of a decision that needs review: a neighbouring grade.
    let other = GRADES[if i % 5 == 4 { 3 } else { i % 5 + 1 }];
    let well = format!("{}{}", (b'A' + ((i % 96) / 12) as u8) as char, i % 12 + 1);
    let review = i.is_multiple_of(review_every);
    Seed {
        capture: format!("BW-{i:08}"),
        accession: format!("S{:07}", i / 3),
        plate: format!("W{:06}", i / 96),
        well,
        patient: Some(
            serde_json::json!({"mrn": format!("M{:07}", i / 3), "family": "DOE",
            "given": "JANE", "birth_date": "1980-01-01", "sex": "F"}),
        ),
        grade: g,
        votes: if review {
            [g, g, g, other, other]
        } else {
            [g; 5]
        },
        flags: if review {
            vec!["disagree_adjacent"]
        } else {
            vec![]
        },
        needs_review: review,
        ..Seed::default()
    }
}

async fn seed(pool: &sqlx::PgPool, from: usize, to: usize, review_every: usize) {
    let imgs = Arc::new(images());
    let start = Instant::now();
    let mut next = from;
    while next < to {
        let mut tasks = Vec::new();
        // Two writers, as two workers would write.
        for _ in 0..2 {
            let (lo, hi) = (next, (next + BATCH).min(to));
            next = hi;
            if lo >= hi {
                break;
            }
            let (pool, imgs) = (pool.clone(), imgs.clone());
            tasks.push(tokio::spawn(async move {
                let seeds: Vec<Seed> = (lo..hi).map(|i| seed_of(i, review_every)).collect();
                let events: Vec<_> = seeds.iter().map(Seed::event).collect();
                let classes: Vec<_> = seeds.iter().map(Seed::classification).collect();
                let batch: Vec<NewDecision<'_>> = (lo..hi)
                    .zip(events.iter().zip(&classes))
                    .map(|(i, (event, classification))| {
                        let bytes = &imgs[i % imgs.len()];
                        NewDecision {
                            event,
                            image: ImageRow {
                                sha256: Sha256Digest::of(bytes),
                                media_type: "image/png",
                                width: 229,
                                height: 230,
                                bytes,
                            },
                            classification,
                            timings: Timings {
                                decode_ms: 1.0,
                                preprocess_ms: 0.5,
                                inference_ms: 10.0,
                                queue_ms: 0.0,
                                batch_size: BATCH,
                            },
                        }
                    })
                    .collect();
                write_batch(&pool, &seeds[0].provenance(), None, &batch)
                    .await
                    .expect("the batch write");
            }));
        }
        for t in tasks {
            t.await.expect("a writer");
        }
        if (next - from) % 50_000 < 2 * BATCH {
            let rate = (next - from) as f64 / start.elapsed().as_secs_f64();
            eprintln!("seeded {next} of {to} ({rate:.0} decisions/s)");
        }
    }
}

fn percentiles(mut t: Vec<Duration>) -> String {
    t.sort();
    let ms = |q: f64| t[((t.len() as f64 * q) as usize).min(t.len() - 1)].as_secs_f64() * 1e3;
    format!(
        "p50 {:.2} / p95 {:.2} / p99 {:.2} / max {:.2} ms",
        ms(0.50),
        ms(0.95),
        ms(0.99),
        ms(1.0)
    )
}

async fn get(app: &axum::Router, uri: &str, cookie: &str) -> Duration {
    let req = Request::builder()
        .uri(uri)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .expect("a request");
    let t = Instant::now();
    let resp = app.clone().oneshot(req).await.expect("an answer");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("a body").to_bytes();
    let took = t.elapsed();
    assert_eq!(
        status,
        StatusCode::OK,
        "{uri}: {}",
        String::from_utf8_lossy(&body)
    );
    took
}

#[tokio::main]
async fn main() {
    let n = env_usize("BENCH_WEB_N", 1_000_000);
    let review_every = env_usize("BENCH_WEB_REVIEW_EVERY", 100);
    let requests = env_usize("BENCH_WEB_REQUESTS", 1000);
    let base = std::env::var("BENCH_DATABASE_BASE")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let admin = sqlx::PgPool::connect(&format!("{base}/postgres"))
        .await
        .expect("PostgreSQL");
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'iari_bench_web')",
    )
    .fetch_one(&admin)
    .await
    .expect("pg_database");
    if !exists {
        sqlx::query("CREATE DATABASE iari_bench_web")
            .execute(&admin)
            .await
            .expect("create");
    }
    let url = format!("{base}/iari_bench_web");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(&url)
        .await
        .expect("the bench database");
    iari::store::MIGRATOR.run(&pool).await.expect("migrations");
    let have: i64 = sqlx::query_scalar("SELECT count(*) FROM decisions")
        .fetch_one(&pool)
        .await
        .expect("count");
    if (have as usize) < n {
        seed(&pool, have as usize, n, review_every).await;
        sqlx::query("ANALYZE")
            .execute(&pool)
            .await
            .expect("analyze");
    }
    let (decisions, waiting): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM decisions), (SELECT count(*) FROM review_queue)",
    )
    .fetch_one(&pool)
    .await
    .expect("counts");

    let mut settings = iari::config::Settings::load_from(None, Some(Default::default()))
        .expect("default settings");
    settings.workstation.secure_cookies = false;
    let name = "bench.web";
    let user_id = match users::add(
        &pool,
        name,
        "Web Bench",
        Role::Supervisor,
        "bench password 12345",
        false,
        "bench",
    )
    .await
    {
        Ok(id) => id,
        Err(_) => sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
            .bind(name)
            .fetch_one(&pool)
            .await
            .expect("the bench account"),
    };
    let who = Principal {
        user_id,
        username: name.into(),
        full_name: "Web Bench".into(),
        role: Role::Supervisor,
    };
    let secret = sessions::start(&pool, &who, &settings.workstation)
        .await
        .expect("a session");
    let cookie = format!("{}={secret}", iari::http::web::SESSION_COOKIE);
    let app = iari::http::web::routes(pool.clone(), Arc::new(settings));

    // Random decisions, from a seeded generator: the same ids on every run.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut pick = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        1 + (x % decisions as u64) as i64
    };
    println!(
        "bench-web: {decisions} decisions, {waiting} awaiting review (SYNTHETIC), {requests} requests per route, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for (label, route) in [
        ("worklist, first page", 0),
        ("decision page", 1),
        ("well image", 2),
    ] {
        let mut times = Vec::with_capacity(requests);
        for i in 0..requests + 50 {
            let uri = match route {
                0 => "/worklist".to_string(),
                1 => format!("/decisions/{}", pick()),
                _ => format!("/decisions/{}/image", pick()),
            };
            let t = get(&app, &uri, &cookie).await;
            if i >= 50 {
                times.push(t);
            }
        }
        println!("{label:<22} {}", percentiles(times));
    }
}
