//! The one place that assembles a process: from the settings and one cancellation token it
//! checks the database's schema, loads what the requested tasks need, starts them (the capture
//! consumer, the HL7 sender, HTTP or the workstation) and joins them on shutdown. `cli::worker`,
//! `cli::serve` and `cli::demo` call only this; the stages know nothing of each other's tasks.

use crate::classify::{Engine, ImageLimits};
use crate::config::Settings;
use crate::health::Readiness;
use crate::ingest::EventLimits;
use crate::ingest::source::ImageRoot;
use crate::pipeline::{PrepareContext, Processor};
use crate::release::ActivePolicy;
use crate::store::decisions::{Provenance, worker_identity};
use anyhow::Context;
use serde_json::json;
use sqlx::PgPool;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A long-running task a process can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Capture events from the broker through classify and store (`pipeline::run`).
    Consumer,
    /// HL7 results from the outbox to the LIS (`deliver::run_sender`).
    Sender,
    /// Health, readiness and metrics on `http.addr` (a worker's).
    Http,
    /// The review workstation and the API, with health, readiness and metrics, on `http.addr`
    /// (`iari serve`: database only; not together with `Http`).
    Workstation,
}

impl Task {
    fn name(self) -> &'static str {
        match self {
            Task::Consumer => "consumer",
            Task::Sender => "sender",
            Task::Http => "http",
            Task::Workstation => "workstation",
        }
    }
}

/// A started process: its tasks and what they share.
pub struct App {
    pub pool: PgPool,
    /// The HTTP server's own pool (`store::http_pool`), when HTTP runs.
    http_pool: Option<PgPool>,
    pub readiness: Arc<Readiness>,
    /// Where HTTP listens (the bound address, so `:0` in tests resolves).
    pub http_addr: Option<SocketAddr>,
    tasks: Vec<(Task, JoinHandle<()>)>,
}

impl App {
    /// Checks what can be checked before anything runs (the LIS transport, the broker's TLS
    /// and credentials), checks the database's schema, loads the ensemble when the consumer runs, then
    /// starts `tasks`. An error here means nothing was started.
    pub async fn start(
        settings: Arc<Settings>,
        tasks: &[Task],
        cancel: CancellationToken,
    ) -> anyhow::Result<App> {
        let wants = |t: Task| tasks.contains(&t);
        if wants(Task::Sender) {
            // A transport that cannot be set up (a missing CA file, say) stops start-up here
            // rather than leaving every result silently waiting in the outbox.
            crate::deliver::transport::Transport::from_settings(&settings.lis)?;
        }
        let pool = database(&settings).await?;
        let (processor, readiness) = if wants(Task::Consumer) {
            let p = processor(&settings, &pool).await?;
            let r = Readiness::default();
            r.set_models(true);
            (Some(p), Arc::new(r))
        } else {
            (None, Arc::new(Readiness::without_consumer()))
        };
        let mut app = App {
            pool,
            http_pool: None,
            readiness,
            http_addr: None,
            tasks: Vec::new(),
        };
        // HTTP binds first: a taken port fails start-up before any message is consumed.
        if wants(Task::Http) || wants(Task::Workstation) {
            anyhow::ensure!(
                !(wants(Task::Http) && wants(Task::Workstation)),
                "one process serves either a worker's HTTP or the workstation on http.addr"
            );
            // Readers get a pool of their own: however many or slow, they cannot take the
            // connections the consumer and the sender commit with.
            let http_pool = crate::store::http_pool(&settings.database, &settings.http)?;
            let state = crate::http::AppState {
                pool: http_pool.clone(),
                readiness: app.readiness.clone(),
            };
            let mut router = crate::http::router(state);
            let task_kind = if wants(Task::Workstation) {
                let ws = &settings.workstation;
                router = router
                    .merge(crate::http::api::routes(http_pool.clone(), ws))
                    .merge(crate::http::web::routes(
                        http_pool.clone(),
                        settings.clone(),
                    ));
                Task::Workstation
            } else {
                Task::Http
            };
            let router = crate::http::limits::apply(router, &settings.http);
            let (task, addr) =
                crate::http::serve(router, settings.http.addr, cancel.clone()).await?;
            app.http_pool = Some(http_pool);
            app.http_addr = Some(addr);
            app.tasks.push((task_kind, task));
        }
        if let Some(p) = processor {
            if p.qc.is_some() {
                let deadlines = crate::pipeline::deadlines::run(app.pool.clone(), cancel.clone());
                app.tasks.push((Task::Consumer, tokio::spawn(deadlines)));
            }
            // Activations, suspensions and resumptions reach this worker without a restart.
            let follow =
                crate::release::store::follow(app.pool.clone(), p.policy.clone(), cancel.clone());
            app.tasks.push((Task::Consumer, tokio::spawn(follow)));
            let run =
                crate::pipeline::run(p, settings.clone(), app.readiness.clone(), cancel.clone());
            app.tasks.push((Task::Consumer, tokio::spawn(run)));
        }
        if wants(Task::Sender) {
            let (pool, s, c) = (app.pool.clone(), settings.clone(), cancel.clone());
            let sender = async move {
                if let Err(e) = crate::deliver::run_sender(pool, &s, c).await {
                    tracing::error!(error = %e, "HL7 sender cannot start; decisions stay in the outbox");
                }
            };
            app.tasks.push((Task::Sender, tokio::spawn(sender)));
        }
        Ok(app)
    }

    /// Waits for every task to finish (after the token is cancelled), then closes the pools.
    pub async fn join(self) {
        for (task, handle) in self.tasks {
            if let Err(e) = handle.await {
                tracing::error!(task = task.name(), error = %e, "task ended abnormally");
            }
        }
        if let Some(p) = self.http_pool {
            p.close().await;
        }
        self.pool.close().await;
    }
}

/// Opens the pool and checks the schema is this build's. Services never migrate: that needs
/// the schema's owner, and they run as least-privileged logins (`iari migrate` does it).
async fn database(settings: &Settings) -> anyhow::Result<PgPool> {
    let db = &settings.database;
    let pool = crate::store::pool(db)?;
    crate::store::check_schema(&pool)
        .await
        .with_context(|| format!("database {}", db.url.redacted()))?;
    Ok(pool)
}

/// The stages of the consumer, with the ensemble loaded.
async fn processor(settings: &Arc<Settings>, pool: &PgPool) -> anyhow::Result<Processor> {
    // A broker that rejects our TLS set-up or credentials stops start-up here, before the slow
    // model load, instead of a reconnect loop that can never succeed.
    crate::ingest::connect::preflight(&settings.amqp)
        .await
        .with_context(|| format!("broker {}", settings.amqp.url.redacted()))?;
    let s = settings.clone();
    let engine = tokio::task::spawn_blocking(move || Engine::load(&s))
        .await?
        .context("loading the ensemble")?;
    let engine = Arc::new(engine);
    crate::metrics::metrics()
        .drift
        .set_window(settings.drift.window);
    let root = ImageRoot::new(&settings.images.root, settings.images.max_bytes)
        .with_context(|| format!("images.root {}", settings.images.root.display()))?;
    Ok(Processor {
        provenance: Arc::new(provenance(&engine)),
        engine,
        pool: pool.clone(),
        prepare: Arc::new(PrepareContext {
            events: EventLimits::for_images(settings.plate, settings.images.max_bytes),
            images: ImageLimits::from(&settings.images),
            root,
        }),
        delivery_limit: settings.amqp.delivery_limit,
        qc: crate::qc::enabled(&settings.qc).then(|| Arc::new(settings.qc.clone())),
        policy: ActivePolicy::new(
            crate::release::store::active(pool)
                .await
                .context("reading the release policy in force")?,
        ),
    })
}

/// Provenance shared by every decision this engine makes.
pub fn provenance(engine: &Engine) -> Provenance {
    let info = engine.info();
    let mut runtime = json!({
        "onnxruntime_version": info.execution.onnxruntime_version,
        "provider": info.execution.provider,
        "requested": info.execution.requested,
        "fallback_reason": info.execution.fallback_reason,
        "preprocessing": info.preprocessing_version,
    });
    // Which reference scored the images (its version survives a refit, its digest does not):
    // replay refuses another. Absent, not null, without one, so such runtimes stay as before.
    if let (Some(shift), Some(obj)) = (&info.shift, runtime.as_object_mut()) {
        obj.insert("shift".into(), json!(shift));
    }
    Provenance {
        ensemble_name: info.ensemble.name.clone(),
        ensemble_version: info.ensemble.version.clone(),
        runtime,
        worker: worker_identity(),
    }
}
