//! What a drill creates on the services and removes again: its database (on any PostgreSQL),
//! its synthetic capture images, and its queues and exchanges (on any RabbitMQ).

use iari::config::AmqpSettings;
use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A new, migrated database `name` on `base` (the kit's): its pool (short acquire timeout, so
/// the drill can poll through database outages) and URL.
pub async fn create_db(base: &str, name: &str) -> (PgPool, String) {
    let options = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(2));
    let db = iari_kit::db::TestDb::create(base, name, options).await;
    (db.pool, db.url)
}

/// Drops a database made by [`create_db`], closing any connection still open to it.
pub async fn drop_db(base: &str, name: &str) {
    iari_kit::db::drop_database(base, name).await;
}

/// Writes `n` images (the bundled samples, each with a unique trailer after the image end so
/// every capture has new bytes); returns (capture id, path relative to `dir`).
pub fn write_images(dir: &Path, n: usize, tag: &str) -> Vec<(String, String)> {
    std::fs::create_dir_all(dir).unwrap();
    let mut samples = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("onnx/samples"),
        &mut samples,
    );
    samples.sort();
    let bytes: Vec<Vec<u8>> = samples.iter().map(|p| std::fs::read(p).unwrap()).collect();
    (0..n)
        .map(|i| {
            let mut b = bytes[i % bytes.len()].clone();
            b.extend_from_slice(format!("iari-drill-{tag}-{i:06}").as_bytes());
            let rel = format!("{i:06}.png");
            std::fs::write(dir.join(&rel), b).unwrap();
            (format!("DRILL-{tag}-{i:06}"), rel)
        })
        .collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|e| e == "png") {
            out.push(p);
        }
    }
}

async fn broker(amqp: &AmqpSettings) -> Connection {
    Connection::connect(amqp.url.expose(), ConnectionProperties::default())
        .await
        .unwrap()
}

/// Messages in the capture queue and in the dead-letter queue (passive declares).
pub async fn queue_depths(amqp: &AmqpSettings) -> (u32, u32) {
    let conn = broker(amqp).await;
    let ch = conn.create_channel().await.unwrap();
    let mut counts = Vec::new();
    for q in [&amqp.queue, &amqp.dead_letter_queue] {
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let d = ch
            .queue_declare(q.as_str().into(), passive, FieldTable::default())
            .await
            .unwrap();
        counts.push(d.message_count());
    }
    let _ = conn.close(200, "done".into()).await;
    (counts[0], counts[1])
}

/// Deletes both queues and both exchanges.
pub async fn delete_queues(amqp: &AmqpSettings) {
    let conn = broker(amqp).await;
    let ch = conn.create_channel().await.unwrap();
    for q in [&amqp.queue, &amqp.dead_letter_queue] {
        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await
            .unwrap();
    }
    for x in [&amqp.exchange, &amqp.dead_letter_exchange] {
        let _ = ch
            .exchange_delete(x.as_str().into(), Default::default())
            .await;
    }
    let _ = conn.close(200, "done".into()).await;
}
