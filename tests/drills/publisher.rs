//! The drills' analyzer: publishes every capture of the world as a steady stream, with publisher
//! confirms, and survives broker faults itself: a publish or confirm that fails (connection
//! closed, reset, nack, no confirm in time) makes it reconnect and publish the unconfirmed events
//! again. The same capture id with the same bytes may thus reach the queue twice; the worker must
//! treat that as a redelivery.

use iari::config::AmqpSettings;
use iari::ingest::amqp::{Broker, publish_capture};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What the publisher had to do to get every event confirmed.
#[derive(Debug, Default, Clone)]
pub struct Published {
    /// Events published again after a failed publish or confirm.
    pub republished: usize,
    /// Connections opened after the first.
    pub reconnects: usize,
}

/// Events published between confirm waits (a group is retried as a whole when one fails).
const GROUP: usize = 16;

/// A running publisher: its task and how many events are confirmed so far.
pub struct Stream {
    pub task: JoinHandle<Published>,
    confirmed: Arc<AtomicUsize>,
}

impl Stream {
    pub fn confirmed(&self) -> usize {
        self.confirmed.load(Ordering::Relaxed)
    }

    /// Waits for every event to be confirmed (the task panics past its limit).
    pub async fn done(self) -> Published {
        self.task.await.unwrap()
    }
}

/// Starts publishing `captures` (id, image path) at `rate` per second (0: as fast as confirms
/// allow); the task ends when every event is confirmed, or panics after `limit`.
pub fn start(
    amqp: AmqpSettings,
    captures: Vec<(String, String)>,
    rate: usize,
    limit: Duration,
) -> Stream {
    let confirmed = Arc::new(AtomicUsize::new(0));
    let c = confirmed.clone();
    let task = tokio::spawn(async move { publish(amqp, captures, rate, limit, c).await });
    Stream { task, confirmed }
}

async fn publish(
    amqp: AmqpSettings,
    captures: Vec<(String, String)>,
    rate: usize,
    limit: Duration,
    confirmed: Arc<AtomicUsize>,
) -> Published {
    let bodies: Vec<(String, Vec<u8>)> = captures
        .iter()
        .enumerate()
        .map(|(i, (id, path))| (id.clone(), event(id, path, i)))
        .collect();
    let start = Instant::now();
    let mut out = Published::default();
    let mut broker: Option<Broker> = None;
    let mut next = 0;
    let mut failed_before = false;
    while next < bodies.len() {
        assert!(
            start.elapsed() < limit,
            "publisher: {next} of {} confirmed after {limit:?}",
            bodies.len()
        );
        let b = match &broker {
            Some(b) if b.connected() => b,
            _ => {
                if let Some(old) = broker.take() {
                    old.close().await;
                }
                match Broker::connect(&amqp, "iari-drill-publisher").await {
                    Ok(b) => {
                        if failed_before {
                            out.reconnects += 1;
                        }
                        broker.insert(b)
                    }
                    Err(_) => {
                        failed_before = true;
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        continue;
                    }
                }
            }
        };
        let group = &bodies[next..(next + GROUP).min(bodies.len())];
        if send_group(b, &amqp, group).await {
            next += group.len();
            confirmed.store(next, Ordering::Relaxed);
            if rate > 0 {
                let due = start + Duration::from_secs_f64(next as f64 / rate as f64);
                tokio::time::sleep_until(due).await;
            }
        } else {
            // Not confirmed as a whole: the same events go again on a new connection.
            failed_before = true;
            out.republished += group.len();
            if let Some(old) = broker.take() {
                old.close().await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    if let Some(b) = broker {
        b.close().await;
    }
    out
}

/// Publishes the group and waits for every confirm; false if any failed or was nacked.
async fn send_group(b: &Broker, amqp: &AmqpSettings, group: &[(String, Vec<u8>)]) -> bool {
    let mut confirms = Vec::with_capacity(group.len());
    for (id, body) in group {
        let sent = publish_capture(&b.channel, amqp, id, body).await;
        match sent {
            Ok(c) => confirms.push(c),
            Err(_) => return false,
        }
    }
    let all = async {
        for c in confirms {
            match c.await {
                Ok(conf) if conf.is_ack() => {}
                _ => return false,
            }
        }
        true
    };
    tokio::time::timeout(Duration::from_secs(10), all)
        .await
        .unwrap_or(false)
}

/// A capture event v1 for the image at `path` (relative to the image root); built once, so a
/// republished event carries the same bytes.
fn event(id: &str, path: &str, i: usize) -> Vec<u8> {
    let well = format!("{}{}", (b'A' + (i / 12 % 8) as u8) as char, i % 12 + 1);
    let ev = serde_json::json!({
        "schema": "iari.capture.v1",
        "capture_id": id,
        "captured_at": chrono::Utc::now().to_rfc3339(),
        "analyzer": { "id": "DRILL-01", "software_version": "drill" },
        "plate": { "id": format!("PLT{:05}", i / 96), "well": well },
        "specimen": { "accession": format!("S26-{i:06}") },
        "image": { "path": path },
    });
    serde_json::to_vec(&ev).unwrap()
}
