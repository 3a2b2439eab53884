//! Assembles a running worker from the settings: database (created, migrated), engine, image
//! root, HTTP server and the consumer loop, all stopped by one cancellation token.

use super::prepare::PrepareContext;
use super::process::Processor;
use crate::classify::{Engine, ImageLimits};
use crate::config::Settings;
use crate::http::{AppState, Readiness};
use crate::ingest::EventLimits;
use crate::ingest::source::ImageRoot;
use crate::store::decisions::{Provenance, worker_identity};
use anyhow::Context;
use serde_json::json;
use sqlx::PgPool;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A started worker: the consumer task, the HTTP task (if any) and what they share.
pub struct WorkerHandle {
    pub consumer: JoinHandle<()>,
    pub http: Option<JoinHandle<()>>,
    pub http_addr: Option<std::net::SocketAddr>,
    pub pool: PgPool,
    pub readiness: Arc<Readiness>,
}

impl WorkerHandle {
    /// Waits for the consumer (after `cancel`), then closes the pool.
    pub async fn join(self) {
        let _ = self.consumer.await;
        if let Some(h) = self.http {
            let _ = h.await;
        }
        self.pool.close().await;
    }
}

/// Prepares the database, loads the engine and starts consuming (and serving HTTP when `serve_http`).
pub async fn start(
    settings: Arc<Settings>,
    serve_http: bool,
    cancel: CancellationToken,
) -> anyhow::Result<WorkerHandle> {
    let db = &settings.database;
    crate::store::ensure_database(db)
        .await
        .with_context(|| format!("database {}", db.url.redacted()))?;
    let pool = crate::store::pool(db)?;
    let applied = crate::store::migrate(&pool).await.context("migrations")?;
    tracing::info!(applied, "database ready");
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
    let readiness = Arc::new(Readiness::default());
    readiness.set_models(true);
    let root = ImageRoot::new(&settings.images.root, settings.images.max_bytes)
        .with_context(|| format!("images.root {}", settings.images.root.display()))?;
    let processor = Processor {
        provenance: Arc::new(provenance(&engine)),
        engine,
        pool: pool.clone(),
        prepare: Arc::new(PrepareContext {
            events: EventLimits::for_images(settings.plate, settings.images.max_bytes),
            images: ImageLimits::from(&settings.images),
            root,
        }),
        delivery_limit: settings.amqp.delivery_limit,
    };
    let (http, http_addr) = if serve_http {
        let state = AppState {
            pool: pool.clone(),
            readiness: readiness.clone(),
        };
        // Health and metrics, plus the decisions API (`http::api`) on the same listener.
        let api = crate::http::api::routes(pool.clone(), &settings.http);
        let app = crate::http::router(state).merge(api);
        let (h, a) = serve(app, settings.http.addr, cancel.clone()).await?;
        (Some(h), Some(a))
    } else {
        (None, None)
    };
    let consumer = tokio::spawn(super::run(processor, settings, readiness.clone(), cancel));
    Ok(WorkerHandle {
        consumer,
        http,
        http_addr,
        pool,
        readiness,
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

/// Binds and serves `router` until `cancel`.
pub async fn serve(
    router: axum::Router,
    addr: std::net::SocketAddr,
    cancel: CancellationToken,
) -> anyhow::Result<(JoinHandle<()>, std::net::SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("http.addr {addr}"))?;
    let bound = listener.local_addr()?;
    tracing::info!(addr = %bound, "serving /healthz /readyz /metrics");
    let task = tokio::spawn(async move {
        let shutdown = async move { cancel.cancelled().await };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "http server failed");
        }
    });
    Ok((task, bound))
}
