//! Ingest: capture events in from RabbitMQ (`amqp`), parsed and validated at the edge (`event`),
//! image bytes fetched from the confined image root or the event itself (`source`), and the
//! reasons a capture can fail (`reason`), typed by what the consumer must do with the message.

pub mod amqp;
pub mod connect;
pub mod event;
mod json;
pub mod reason;
pub mod source;

pub use event::{CaptureEvent, EventLimits, ImageRef, ImageSource};
pub use reason::{DeadLetterReason, Failure};
pub use source::{LoadedImage, load_image};
