//! `iari demo`: the end-to-end demo on local services. Migrates, starts a worker in this process
//! on its own queues (`iari.demo.*`), publishes the bundled synthetic samples, waits until every
//! capture is decided, and prints a summary with where to look next.

use super::publish::{PublishArgs, collect_images, publish};
use crate::app::{App, Task};
use crate::config::{QcMode, Settings};
use crate::domain::{Flag, Grade, PlateRole};
use anyhow::bail;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Sample images (default: the bundled synthetic set under `images.root`).
    #[arg(long)]
    pub samples: Option<PathBuf>,
    /// Publish everything before the worker starts (measures draining a full queue).
    #[arg(long)]
    pub prefill: bool,
    /// Longest wait for all decisions, in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_s: u64,
}

fn demo_settings(settings: &Settings) -> Settings {
    let mut s = settings.clone();
    s.amqp.exchange = "iari.demo.captures".into();
    s.amqp.queue = "iari.demo.captures".into();
    s.amqp.dead_letter_exchange = "iari.demo.captures.dlx".into();
    s.amqp.dead_letter_queue = "iari.demo.captures.dead".into();
    s
}

pub async fn run(settings: &Settings, args: DemoArgs) -> anyhow::Result<ExitCode> {
    let mut s = demo_settings(settings);
    let samples = args
        .samples
        .clone()
        .unwrap_or_else(|| s.images.root.clone());
    let files = collect_images(std::slice::from_ref(&samples))?;
    if files.is_empty() {
        bail!("no sample images under {}", samples.display());
    }
    let controls = plate_controls(&samples);
    if controls.is_none() && s.qc.mode == QcMode::Plate {
        println!(
            "no neg/ and 4+/ images under {} to use as the plate's controls: plate QC off for this demo",
            samples.display()
        );
        s.qc.mode = QcMode::Off;
    }
    let s = Arc::new(s);
    let cancel = CancellationToken::new();
    let stamp = chrono::Utc::now().format("%H%M%S").to_string();
    let (negative_control, positive_control) = controls.unzip();
    let pub_args = PublishArgs {
        paths: vec![samples],
        inline: false,
        sha256: true,
        prefix: Some(format!("DEMO{stamp}")),
        analyzer: "SIM-01".into(),
        plate: format!("DEMO{stamp}"),
        accession: "S26-DEMO".into(),
        mrn: Some("MRN-DEMO".into()),
        family: Some("DOE".into()),
        given: Some("JANE".into()),
        rate: 0.0,
        repeat: 1,
        role: PlateRole::Patient,
        negative_control,
        positive_control,
        reagent_lot: Some("RS-DEMO".into()),
        reagent_expires: Some(
            (chrono::Utc::now().date_naive() + chrono::Days::new(90)).to_string(),
        ),
        reagent_cell: None,
    };
    // --prefill measures the worker alone draining a full queue; otherwise publishing and
    // consuming run together and latency is publish → committed.
    let (worker, published, t0) = if args.prefill {
        let published = publish(&s, &pub_args, &files).await?;
        let worker = start_worker(&s, &cancel).await?;
        (worker, published, Instant::now())
    } else {
        let worker = start_worker(&s, &cancel).await?;
        let t0 = Instant::now();
        (worker, publish(&s, &pub_args, &files).await?, t0)
    };
    let all: Vec<String> = published.iter().map(|(id, _)| id.clone()).collect();
    let ids: Vec<String> = published
        .iter()
        .filter(|(_, role)| !role.is_control())
        .map(|(id, _)| id.clone())
        .collect();
    println!(
        "published {} synthetic sample captures and {} control wells",
        ids.len(),
        all.len() - ids.len()
    );
    let decided = wait_for_decisions(&worker.pool, &all, Duration::from_secs(args.timeout_s)).await;
    let elapsed = t0.elapsed();
    let delivered = wait_for_delivery(&worker.pool, &ids, Duration::from_secs(30)).await;
    let summary = summarize(&worker.pool, &ids).await;
    let timing = end_to_end(&worker.pool, &ids).await;
    let qc = crate::store::plates::state(&worker.pool, &pub_args.plate).await;
    cancel.cancel();
    worker.join().await;
    let (rows, decided, timing) = (summary?, decided?, timing?);
    print_summary(&rows, &files, decided, all.len(), elapsed);
    match qc? {
        Some(q) => println!(
            "  plate QC       {} {}: {}",
            pub_args.plate,
            q.state,
            q.detail.as_deref().unwrap_or("controls pending")
        ),
        None => println!("  plate QC       off"),
    }
    let dest = match s.lis.transport {
        crate::config::LisTransport::File => format!("file → {}", s.lis.dir.display()),
        crate::config::LisTransport::Mllp => format!("MLLP → {}", s.lis.addr),
    };
    println!(
        "  HL7 delivered  {} of {} patient results acknowledged ({dest})",
        delivered?,
        ids.len()
    );
    if !args.prefill {
        print_timing(&timing);
    }
    print_stages();
    print_next();
    if decided < all.len() {
        bail!(
            "only {decided} of {} captures were decided in time",
            all.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The plate's controls: the first `neg/` image as the negative control and the first `4+/` one
/// as the positive, when the samples have them.
fn plate_controls(samples: &std::path::Path) -> Option<(PathBuf, PathBuf)> {
    let first = |dir: &str| {
        collect_images(&[samples.join(dir)])
            .ok()
            .and_then(|v| v.into_iter().next())
    };
    Some((first("neg")?, first("4+")?))
}

/// Consumer, HL7 sender (lis.transport, default file) and HTTP, as `iari worker` runs them.
async fn start_worker(s: &Arc<Settings>, cancel: &CancellationToken) -> anyhow::Result<App> {
    let tasks = [Task::Consumer, Task::Sender, Task::Http];
    // The demo runs on local services as their owner: it migrates, as an operator would first.
    super::migrate_database(s).await?;
    let worker = App::start(s.clone(), &tasks, cancel.clone()).await?;
    let http = worker
        .http_addr
        .map_or_else(|| "-".into(), |a| a.to_string());
    println!(
        "worker started (queue {}, metrics at http://{http}/metrics)",
        s.amqp.queue
    );
    Ok(worker)
}

async fn count_decided(pool: &sqlx::PgPool, ids: &[String]) -> Result<usize, sqlx::Error> {
    let n = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM decisions WHERE capture_id = ANY($1)"#,
        ids
    )
    .fetch_one(pool)
    .await?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Waits (bounded) until the demo's HL7 results are acknowledged; returns how many are.
async fn wait_for_delivery(
    pool: &sqlx::PgPool,
    ids: &[String],
    timeout: Duration,
) -> anyhow::Result<i64> {
    let deadline = Instant::now() + timeout;
    loop {
        let n = sqlx::query_scalar!(
            r#"SELECT count(*) AS "n!" FROM hl7_messages m JOIN decisions d ON d.id = m.decision_id
               WHERE d.capture_id = ANY($1) AND m.state = 'acked'"#,
            ids
        )
        .fetch_one(pool)
        .await?;
        if n >= ids.len() as i64 || Instant::now() >= deadline {
            return Ok(n);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_for_decisions(
    pool: &sqlx::PgPool,
    ids: &[String],
    timeout: Duration,
) -> anyhow::Result<usize> {
    let deadline = Instant::now() + timeout;
    loop {
        let n = count_decided(pool, ids).await?;
        if n >= ids.len() || Instant::now() >= deadline {
            return Ok(n);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One of the demo's decisions.
struct Row {
    capture_id: String,
    grade: Grade,
    flags: Vec<Flag>,
    needs_review: bool,
}

async fn summarize(pool: &sqlx::PgPool, ids: &[String]) -> anyhow::Result<Vec<Row>> {
    Ok(sqlx::query_as!(
        Row,
        r#"SELECT capture_id, grade AS "grade: Grade", flags AS "flags: Vec<Flag>", needs_review
           FROM decisions WHERE capture_id = ANY($1) ORDER BY capture_id"#,
        ids
    )
    .fetch_all(pool)
    .await?)
}

/// Publish → committed: captures per second over the whole run and latency percentiles (s).
#[derive(Debug)]
struct EndToEnd {
    n: i64,
    span_s: Option<f64>,
    p50: Option<f64>,
    p95: Option<f64>,
    p99: Option<f64>,
}

async fn end_to_end(pool: &sqlx::PgPool, ids: &[String]) -> anyhow::Result<EndToEnd> {
    // captured_at is the publisher's clock at publish; decided_at is the transaction's start,
    // just before its commit. Same host, same clock.
    Ok(sqlx::query_as!(
        EndToEnd,
        r#"WITH l AS (SELECT c.captured_at, d.decided_at,
             extract(epoch FROM d.decided_at - c.captured_at)::float8 AS s
             FROM decisions d JOIN captures c USING (capture_id) WHERE d.capture_id = ANY($1))
           SELECT count(*) AS "n!",
             extract(epoch FROM max(decided_at) - min(captured_at))::float8 AS span_s,
             percentile_cont(0.5) WITHIN GROUP (ORDER BY s) AS p50,
             percentile_cont(0.95) WITHIN GROUP (ORDER BY s) AS p95,
             percentile_cont(0.99) WITHIN GROUP (ORDER BY s) AS p99 FROM l"#,
        ids
    )
    .fetch_one(pool)
    .await?)
}

fn print_timing(t: &EndToEnd) {
    let (Some(span), Some(p50), Some(p95), Some(p99)) = (t.span_s, t.p50, t.p95, t.p99) else {
        return;
    };
    let ms = |s: f64| s * 1000.0;
    println!(
        "  end to end     {} captures, {:.1} captures/s (first publish → last commit); \
         latency p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms",
        t.n,
        t.n as f64 / span.max(1e-9),
        ms(p50),
        ms(p95),
        ms(p99)
    );
}

fn print_summary(
    rows: &[Row],
    files: &[PathBuf],
    decided: usize,
    published: usize,
    elapsed: Duration,
) {
    let mut grades: BTreeMap<Grade, usize> = BTreeMap::new();
    let mut flags: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rows {
        *grades.entry(r.grade).or_default() += 1;
        for flag in &r.flags {
            *flags.entry(flag.as_str()).or_default() += 1;
        }
    }
    let review = rows.iter().filter(|r| r.needs_review).count();
    // Capture ids end in the publish index, which is the file's index: compare with its folder.
    let labelled = rows.iter().filter_map(|r| {
        let n: usize = r.capture_id.rsplit('-').next()?.parse().ok()?;
        let folder = files.get(n)?.parent()?.file_name()?.to_str()?;
        Some(Grade::from_folder_name(folder)? == r.grade)
    });
    let (agree, total) = labelled.fold((0, 0), |(a, t), ok| (a + usize::from(ok), t + 1));
    println!("\nIARI demo (synthetic samples)");
    println!(
        "  decided        {decided} of {published} in {:.1} s ({:.1} captures/s)",
        elapsed.as_secs_f64(),
        decided as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    let g: Vec<String> = Grade::ALL
        .iter()
        .map(|x| format!("{}={}", x.label(), grades.get(x).unwrap_or(&0)))
        .collect();
    println!("  grades         {}", g.join("  "));
    let f: Vec<String> = flags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!(
        "  flags          {}",
        if f.is_empty() {
            "none".into()
        } else {
            f.join("  ")
        }
    );
    println!("  needs review   {review} (sent as preliminary)");
    println!("  folder label   {agree} of {total} match the synthetic sample's folder");
}

/// Where the worker's time went, from this process's metrics.
fn print_stages() {
    let h = &crate::metrics::metrics().stage_seconds;
    let parts: Vec<String> = [
        "prepare",
        "decode",
        "preprocess",
        "inference",
        "store",
        "ack",
    ]
    .iter()
    .map(|s| {
        let m = h.with_label_values(&[*s]);
        format!("{s} {:.1} s/{}", m.get_sample_sum(), m.get_sample_count())
    })
    .collect();
    let b = crate::metrics::metrics()
        .batch_size
        .with_label_values(&[] as &[&str]);
    let mean = b.get_sample_sum() / (b.get_sample_count().max(1) as f64);
    println!(
        "  stage time     {} (mean batch {mean:.1})",
        parts.join(", ")
    );
}

fn print_next() {
    println!("\nNext: `iari audit list --limit 20`, `iari audit show <ID>`, `iari audit verify`;");
    println!(
        "      the worker's metrics at /metrics (captures, stages, flags) while `iari worker` runs."
    );
    println!(
        "      Review the flagged ones in the workstation: `make workstation` (or `iari serve`)."
    );
}
