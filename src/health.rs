//! Readiness: what a process depends on besides its database (the broker connection, the
//! loaded models), set by the tasks that own them and read by `/readyz`. Neither the pipeline
//! nor HTTP owns it, so neither has to know about the other.

use crate::metrics::metrics;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Default)]
pub struct Readiness {
    broker: AtomicBool,
    models: AtomicBool,
}

impl Readiness {
    /// Readiness of a process that consumes nothing and loads no models (nothing to wait for
    /// but the database).
    pub fn without_consumer() -> Self {
        Self {
            broker: AtomicBool::new(true),
            models: AtomicBool::new(true),
        }
    }

    pub fn set_broker(&self, up: bool) {
        self.broker.store(up, Ordering::Relaxed);
        metrics().broker_connected.set(i64::from(up));
    }

    pub fn set_models(&self, loaded: bool) {
        self.models.store(loaded, Ordering::Relaxed);
    }

    pub fn broker(&self) -> bool {
        self.broker.load(Ordering::Relaxed)
    }

    pub fn models(&self) -> bool {
        self.models.load(Ordering::Relaxed)
    }
}
