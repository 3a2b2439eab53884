//! Ingest: capture events in from RabbitMQ (`amqp`), parsed and validated at the edge (`event`),
//! image bytes fetched from the confined image root or the event itself (`source`). The event
//! and the reasons a capture can fail are the domain's (`domain::{CaptureEvent, Failure}`).

pub mod amqp;
pub mod connect;
pub mod event;
mod json;
pub mod source;

pub use event::EventLimits;
pub use source::{LoadedImage, load_image};
