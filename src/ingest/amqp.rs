//! RabbitMQ: the topology the worker declares, the consuming channel, and how a message is
//! settled (ack, requeue, or dead-lettered by us with an `x-iari-reason` header). No automatic
//! recovery here: the caller's own reconnect loop is the one strategy (`pipeline::run`).

use crate::config::AmqpSettings;
use crate::domain::Failure;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub const REASON_HEADER: &str = "x-iari-reason";

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker: {0}")]
    Lapin(#[from] lapin::Error),
    #[error("amqp.tls_ca_file {0}")]
    CaFile(String),
    #[error("broker refused to confirm the dead-letter publish")]
    NotConfirmed,
    #[error("acknowledgement not delivered (channel closed)")]
    AckLost,
}

/// One connection with one channel (publisher confirms on) used to consume and to dead-letter.
pub struct Broker {
    pub connection: Connection,
    pub channel: Channel,
    settings: AmqpSettings,
    /// Delayed requeues whose nack is not sent yet: their deliveries are still unsettled, so a
    /// multiple ack (which settles every earlier tag on the channel) must wait for them.
    pending_requeues: Arc<AtomicUsize>,
}

impl Broker {
    /// Connects, opens the channel and declares the topology.
    pub async fn connect(settings: &AmqpSettings, name: &str) -> Result<Broker, BrokerError> {
        // Default properties: lapin's auto-recovery stays off, our reconnect loop owns recovery.
        let props = ConnectionProperties::default().with_connection_name(name.to_string().into());
        let connection = super::connect::open(settings, props).await?;
        let channel = connection.create_channel().await?;
        // Confirms let dead-lettering wait until the broker has the copy before acking the original.
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        declare_topology(&channel, settings).await?;
        Ok(Broker {
            connection,
            channel,
            settings: settings.clone(),
            pending_requeues: Arc::new(AtomicUsize::new(0)),
        })
    }

    pub fn connected(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }

    /// Starts consuming the capture queue with manual acknowledgements.
    pub async fn consume(&self, tag: &str) -> Result<Consumer, BrokerError> {
        // Bounds unacknowledged deliveries in hand; per consumer (global = false).
        self.channel
            .basic_qos(self.settings.prefetch, BasicQosOptions { global: false })
            .await?;
        let opts = BasicConsumeOptions {
            // Manual acks: a message is acknowledged only after its decision is committed.
            no_ack: false,
            // Competing consumers: several workers share the queue.
            exclusive: false,
            // RabbitMQ ignores no_local; left at its default.
            no_local: false,
            // We want the consume-ok so that a bad queue name fails here.
            nowait: false,
        };
        Ok(self
            .channel
            .basic_consume(
                self.settings.queue.as_str().into(),
                tag.into(),
                opts,
                FieldTable::default(),
            )
            .await?)
    }

    /// Stops new deliveries (graceful shutdown); deliveries in hand can still be settled.
    pub async fn cancel(&self, tag: &str) -> Result<(), BrokerError> {
        // nowait = false: wait for cancel-ok so no delivery arrives after we stop reading.
        self.channel
            .basic_cancel(tag.into(), BasicCancelOptions { nowait: false })
            .await?;
        Ok(())
    }

    pub async fn close(&self) {
        // Closing the channel returns any unacknowledged deliveries to the queue.
        let _ = self.channel.close(200, "worker stopping".into()).await;
        let _ = self.connection.close(200, "worker stopping".into()).await;
    }

    pub async fn ack(&self, d: &Delivery) -> Result<(), BrokerError> {
        // multiple = false: each message is settled on its own outcome.
        match d.acker.ack(BasicAckOptions { multiple: false }).await? {
            true => Ok(()),
            // Ok(false): the channel died under us; the broker will redeliver.
            false => Err(BrokerError::AckLost),
        }
    }

    /// Acknowledges `last` and every earlier delivery on this channel in one frame
    /// (`multiple = true`). Only for a caller that has settled, or is acknowledging, every
    /// earlier delivery it took: see [`Broker::can_ack_multiple`].
    pub async fn ack_up_to(&self, last: &Delivery) -> Result<(), BrokerError> {
        match last.acker.ack(BasicAckOptions { multiple: true }).await? {
            true => Ok(()),
            false => Err(BrokerError::AckLost),
        }
    }

    /// False while a delayed requeue is outstanding: a multiple ack would settle it as done.
    pub fn can_ack_multiple(&self) -> bool {
        self.pending_requeues.load(Ordering::SeqCst) == 0
    }

    /// Returns the message to the queue after `delay` (counted in `x-delivery-count`), without
    /// holding up the batch loop. If the channel dies meanwhile the broker requeues it anyway.
    pub fn requeue_after(&self, d: &Delivery, delay: std::time::Duration) {
        let acker = d.acker.clone();
        let pending = self.pending_requeues.clone();
        pending.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            // requeue = true: transient failure, try again; multiple = false: just this one.
            let opts = BasicNackOptions {
                multiple: false,
                requeue: true,
            };
            if let Err(e) = acker.nack(opts).await {
                tracing::warn!(error = %e, "requeue failed; the broker redelivers on channel close");
            }
            // The nack frame is sent (or the channel is gone): later acks come after it.
            pending.fetch_sub(1, Ordering::SeqCst);
        });
    }

    /// Publishes the message with its reason to the DLX, waits for the confirm, then acks it.
    pub async fn dead_letter(&self, d: &Delivery, failure: &Failure) -> Result<(), BrokerError> {
        let mut headers = d.properties.headers().clone().unwrap_or_default();
        headers.insert(
            REASON_HEADER.into(),
            AMQPValue::LongString(failure.header_value().into()),
        );
        let props: BasicProperties = d.properties.clone().with_headers(headers);
        let confirm = self
            .channel
            .basic_publish(
                self.settings.dead_letter_exchange.as_str().into(),
                d.routing_key.clone(),
                // mandatory = false: the DLX is ours and bound at start; immediate is unsupported.
                BasicPublishOptions {
                    mandatory: false,
                    immediate: false,
                },
                &d.data,
                props,
            )
            .await?
            .await?;
        if !confirm.is_ack() {
            return Err(BrokerError::NotConfirmed);
        }
        self.ack(d).await
    }
}

/// Durable direct exchange → quorum queue (delivery limit, DLX) and fanout DLX → dead queue.
pub async fn declare_topology(ch: &Channel, s: &AmqpSettings) -> Result<(), BrokerError> {
    // durable: survives broker restarts; the other flags stay false (not internal, not passive).
    let durable_exchange = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    ch.exchange_declare(
        s.exchange.as_str().into(),
        ExchangeKind::Direct,
        durable_exchange,
        FieldTable::default(),
    )
    .await?;
    // Fanout: every dead letter lands in the dead queue whatever its routing key.
    ch.exchange_declare(
        s.dead_letter_exchange.as_str().into(),
        ExchangeKind::Fanout,
        durable_exchange,
        FieldTable::default(),
    )
    .await?;
    // durable, not exclusive, not auto-delete: the queue outlives any one worker.
    let durable_queue = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let mut args = FieldTable::default();
    // Quorum queues replicate and count deliveries (`x-delivery-count`) for the limit.
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    args.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongInt(s.delivery_limit as i32),
    );
    // The broker's own safety net past the limit; the worker normally dead-letters first.
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(s.dead_letter_exchange.as_str().into()),
    );
    ch.queue_declare(s.queue.as_str().into(), durable_queue, args)
        .await?;
    ch.queue_bind(
        s.queue.as_str().into(),
        s.exchange.as_str().into(),
        s.routing_key.as_str().into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    ch.queue_declare(
        s.dead_letter_queue.as_str().into(),
        durable_queue,
        FieldTable::default(),
    )
    .await?;
    ch.queue_bind(
        s.dead_letter_queue.as_str().into(),
        s.dead_letter_exchange.as_str().into(),
        ShortString::from(""),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    Ok(())
}

/// Earlier deliveries of this message as counted by the quorum queue (0 when absent).
pub fn delivery_count(d: &Delivery) -> u32 {
    let Some(headers) = d.properties.headers() else {
        return 0;
    };
    match headers.inner().get("x-delivery-count") {
        Some(AMQPValue::LongLongInt(n)) => u32::try_from(*n).unwrap_or(u32::MAX),
        Some(AMQPValue::LongInt(n)) => u32::try_from(*n).unwrap_or(u32::MAX),
        Some(AMQPValue::LongUInt(n)) => *n,
        Some(AMQPValue::ShortInt(n)) => u32::try_from(*n).unwrap_or(u32::MAX),
        Some(AMQPValue::ShortShortUInt(n)) => u32::from(*n),
        _ => 0,
    }
}

/// The `x-iari-reason` header of a dead letter, if any.
pub fn reason_header(props: &BasicProperties) -> Option<String> {
    match props.headers().as_ref()?.inner().get(REASON_HEADER)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

/// Publishes one capture event body to the capture exchange, as analyzers do; the returned
/// confirm resolves once the broker has taken it (on a channel in confirm mode).
pub async fn publish_capture(
    channel: &Channel,
    amqp: &AmqpSettings,
    capture_id: &str,
    body: &[u8],
) -> Result<lapin::PublisherConfirm, lapin::Error> {
    channel
        .basic_publish(
            amqp.exchange.as_str().into(),
            amqp.routing_key.as_str().into(),
            BasicPublishOptions::default(),
            body,
            event_properties(capture_id),
        )
        .await
}

/// Properties of a capture event as analyzers publish it.
pub fn event_properties(capture_id: &str) -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        // 2 = persistent: the event survives a broker restart.
        .with_delivery_mode(2)
        .with_message_id(capture_id.into())
}
