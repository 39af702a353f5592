//! RabbitMQ as the event transport (`[events] transport = "rabbitmq"`). The outbox stays
//! the source of truth; a **relay** in each publisher sends its events, in order, to the
//! topic exchange [`EXCHANGE`] (routing key `FEED.TYPE`, e.g. `orders.order.confirmed`) and
//! records how far it got in the publisher's database (`relay_positions`) only past events
//! the broker **confirmed** (publisher confirms), so a broker that is down or a link that
//! drops costs a resend, never an event. Consumers read a durable **quorum queue** of their
//! own (`notifications.orders`) and **acknowledge a message after** their handler's
//! transaction committed, so a consumer that dies mid-handler gets the message again; the
//! handler is idempotent on the event's ID ([`Consumer::deliver`]), so a resend or a
//! redelivery has its effect once.
//!
//! Failures: a handler that keeps failing on an event parks it after `dead_letter_after`
//! attempts, as over the feed ([`super::dead_letters`], replayable); RabbitMQ dead-letters
//! a message delivered more than [`CRASH_ALLOWANCE`] times beyond that (a message that
//! crashes the consumer each time, which an in-memory count never sees) to
//! [`DEAD_LETTER_EXCHANGE`], into the queue `QUEUE.dead`; a body that is not an event is
//! sent there at once with the reason in its `x-gauntlet-error` header.
//!
//! Trace context travels in the message headers (`traceparent`, `baggage`): the relay's
//! PRODUCER span `publish gauntlet.events` is a child of the request that wrote the event,
//! and the consumer's CONSUMER span links to it; both carry OpenTelemetry's messaging
//! conventions (`messaging.system = rabbitmq`).
//!
//! The two switches of the proofs' controls: `publisher_confirms = false` (fire-and-forget:
//! the position moves once the message is handed to the connection) and `ack_after_commit
//! = false` (acknowledged on receipt, before the handler runs).

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use rusqlite::{OptionalExtension, params};
use tracing::Instrument;
use uuid::Uuid;

use super::db::{Db, DbError};
use super::outbox::{Apply, Consumer, Event, Messaging, Outbox, OutboxError};
use super::telemetry;
use crate::config::EventsConfig;

/// `messaging.system` of the spans.
pub const SYSTEM: &str = "rabbitmq";
/// The topic exchange every publisher's events go to.
pub const EXCHANGE: &str = "gauntlet.events";
/// Where messages no consumer can take go (a direct exchange; routing key = the queue).
pub const DEAD_LETTER_EXCHANGE: &str = "gauntlet.dead-letters";
/// Deliveries beyond the consumer's own `dead_letter_after` before RabbitMQ dead-letters a
/// message (`x-delivery-limit`): room for a crash or two between the consumer's counts.
pub const CRASH_ALLOWANCE: u32 = 3;
/// The header a message dead-lettered by a consumer carries its reason in.
pub const ERROR_HEADER: &str = "x-gauntlet-error";
/// Events sent per confirm round.
const BATCH: usize = 100;
const CONNECT_WITHIN: Duration = Duration::from_secs(5);
/// How long the relay waits for the broker to confirm what it sent.
const CONFIRM_WITHIN: Duration = Duration::from_secs(10);
/// Unacknowledged messages a consumer holds at once.
const PREFETCH: u16 = 32;
const MAX_BACKOFF: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot reach the broker: {0}")]
    Connect(String),
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("the broker refused event {0} (basic.nack)")]
    Refused(Uuid),
    #[error("the broker did not confirm event {0} within {1:?}")]
    Unconfirmed(Uuid, Duration),
    #[error("the broker cancelled the consumer of {0}")]
    Cancelled(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error("cannot encode event: {0}")]
    Encode(#[from] serde_json::Error),
}

/// A broker and the guarantees asked of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    /// `amqp://user:password@host:port/vhost`.
    pub url: String,
    pub publisher_confirms: bool,
    pub ack_after_commit: bool,
}

impl Broker {
    /// The broker at `url`, with `events`' switches.
    pub fn new(url: String, events: &EventsConfig) -> Self {
        Self {
            url,
            publisher_confirms: events.publisher_confirms,
            ack_after_commit: events.ack_after_commit,
        }
    }

    async fn connect(&self, name: &str) -> Result<Connection, BrokerError> {
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        match tokio::time::timeout(CONNECT_WITHIN, Connection::connect(&self.url, properties)).await
        {
            Ok(connected) => Ok(connected?),
            Err(_) => Err(BrokerError::Connect(format!(
                "no answer within {CONNECT_WITHIN:?}"
            ))),
        }
    }
}

/// The routing key of an event of `kind` from `feed`.
pub fn routing_key(feed: &str, kind: &str) -> String {
    format!("{feed}.{kind}")
}

async fn declare_exchanges(ch: &Channel) -> Result<(), lapin::Error> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.exchange_declare(
        EXCHANGE.into(),
        ExchangeKind::Topic,
        durable,
        FieldTable::default(),
    )
    .await?;
    ch.exchange_declare(
        DEAD_LETTER_EXCHANGE.into(),
        ExchangeKind::Direct,
        durable,
        FieldTable::default(),
    )
    .await
}

/// Runs `session` again after each failure, backing off, until `shutdown` resolves.
async fn keep_running<F, Fut>(what: &str, shutdown: impl Future<Output = ()>, session: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Infallible, BrokerError>>,
{
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(100);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            Err(e) = session() => {
                tracing::warn!(what, error = %e, "the broker link failed; reconnecting");
            }
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Sends `outbox`'s events (the feed `feed`) to [`EXCHANGE`] until `shutdown` resolves,
/// reconnecting after any failure and resending from the last confirmed position.
pub async fn relay(outbox: Outbox, feed: &'static str, broker: Broker, shutdown: impl Future) {
    let shutdown = async move {
        shutdown.await;
    };
    keep_running(&format!("{feed} relay"), shutdown, || {
        relay_session(&outbox, feed, &broker)
    })
    .await;
}

async fn relay_session(
    outbox: &Outbox,
    feed: &'static str,
    broker: &Broker,
) -> Result<Infallible, BrokerError> {
    let conn = broker.connect(&format!("{feed} relay")).await?;
    let ch = conn.create_channel().await?;
    declare_exchanges(&ch).await?;
    if broker.publisher_confirms {
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
    }
    tracing::info!(
        feed,
        confirms = broker.publisher_confirms,
        "relaying the outbox to RabbitMQ"
    );
    let holder = Uuid::now_v7().to_string();
    // The lease is renewed every third of its length, not per batch; while it is held this
    // relay alone moves the position, so it is read from the database only when taken.
    let mut renew_at = tokio::time::Instant::now();
    let mut position_held: Option<i64> = None;
    loop {
        if tokio::time::Instant::now() >= renew_at {
            if !claim(outbox.db(), feed, &holder).await? {
                // Another instance sharing the database relays this outbox; stand by.
                position_held = None;
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            renew_at = tokio::time::Instant::now() + LEASE / 3;
        }
        let after = match position_held {
            Some(p) => p,
            None => position(outbox.db(), feed).await?,
        };
        position_held = Some(after);
        let events = outbox
            .read_after(after, BATCH, Duration::from_secs(1))
            .await?;
        let Some(last) = events.last().map(|e| e.seq) else {
            if !conn.status().connected() {
                return Err(BrokerError::Connect("the connection closed".into()));
            }
            continue;
        };
        let mut sent = Vec::with_capacity(events.len());
        for e in &events {
            sent.push(publish(&ch, feed, e).await?);
        }
        if broker.publisher_confirms {
            for (id, span, confirm) in sent {
                await_confirm(id, confirm).instrument(span).await?;
            }
        }
        advance(outbox.db(), feed, last).await?;
        position_held = Some(last);
    }
}

/// Sends one event; its PRODUCER span and the broker's confirm to come.
async fn publish(
    ch: &Channel,
    feed: &str,
    e: &Event,
) -> Result<(Uuid, tracing::Span, lapin::PublisherConfirm), BrokerError> {
    let key = routing_key(feed, &e.kind);
    let id = e.id.to_string();
    let span = telemetry::producer_span(
        SYSTEM,
        EXCHANGE,
        &key,
        &e.kind,
        &id,
        e.traceparent.as_deref(),
        e.baggage.as_deref(),
    );
    let mut headers = FieldTable::default();
    for (k, v) in telemetry::headers_of(&span) {
        headers.insert(k.into(), AMQPValue::LongString(LongString::from(v)));
    }
    let properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_message_id(id.into())
        .with_type(e.kind.clone().into())
        .with_headers(headers);
    let body = serde_json::to_vec(e)?;
    let confirm = ch
        .basic_publish(
            EXCHANGE.into(),
            key.into(),
            BasicPublishOptions::default(),
            &body,
            properties,
        )
        .instrument(span.clone())
        .await?;
    Ok((e.id, span, confirm))
}

async fn await_confirm(id: Uuid, confirm: lapin::PublisherConfirm) -> Result<(), BrokerError> {
    match tokio::time::timeout(CONFIRM_WITHIN, confirm).await {
        Ok(Ok(Confirmation::Ack(_))) => Ok(()),
        Ok(Ok(_)) => Err(BrokerError::Refused(id)),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(BrokerError::Unconfirmed(id, CONFIRM_WITHIN)),
    }
}

/// How long a relay's claim on an outbox lasts without renewal: after that, another
/// instance sharing the database takes over (and resends what was not confirmed).
const LEASE: Duration = Duration::from_secs(15);

/// Takes or renews `holder`'s claim to relay `feed` (one relay per outbox, so instances
/// sharing a database do not send each event twice); `false` while another holds it.
async fn claim(db: &Db, feed: &'static str, holder: &str) -> Result<bool, DbError> {
    let holder = holder.to_string();
    db.write(move |tx| {
        let now = super::http::now_unix_ms();
        let until = now + i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX);
        let changed = tx.execute(
            "INSERT INTO relay_leases (feed, holder, until_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (feed) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms
             WHERE relay_leases.holder = excluded.holder OR relay_leases.until_ms < ?4",
            params![feed, holder, until, now],
        )?;
        Ok(changed == 1)
    })
    .await
}

/// How far the relay of `feed` got: the last event the broker took.
pub async fn position(db: &Db, feed: &'static str) -> Result<i64, DbError> {
    db.read(move |tx| {
        Ok(tx
            .query_row(
                "SELECT after FROM relay_positions WHERE feed = ?1",
                [feed],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
    })
    .await
}

/// Moves the relay of `feed` past `seq`; never back (instances sharing a database relay
/// the same outbox: their consumers de-duplicate what both sent).
async fn advance(db: &Db, feed: &'static str, seq: i64) -> Result<(), DbError> {
    db.write(move |tx| {
        tx.execute(
            "INSERT INTO relay_positions (feed, after) VALUES (?1, ?2)
             ON CONFLICT (feed) DO UPDATE SET after = max(after, excluded.after)",
            params![feed, seq],
        )?;
        Ok(())
    })
    .await
}

/// A consumer's queue: its name and the feed whose events it takes.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// e.g. `notifications.orders`, `order-history-2.orders`.
    pub queue: String,
    /// The publisher's feed, e.g. `orders`: the queue is bound to `orders.#`.
    pub feed: String,
}

/// Reads `subscription`'s queue with `consumer` and `apply` until `shutdown` resolves,
/// reconnecting after any failure (what was not acknowledged is delivered again).
pub async fn consume(
    mut consumer: Consumer,
    apply: impl Apply,
    subscription: Subscription,
    broker: Broker,
    shutdown: impl Future,
) {
    consumer.messaging = Some(Messaging {
        system: SYSTEM,
        destination: subscription.queue.clone(),
    });
    let shutdown = async move {
        shutdown.await;
    };
    let what = format!("{} consumer", subscription.queue);
    keep_running(&what, shutdown, || {
        consume_session(&consumer, &apply, &subscription, &broker)
    })
    .await;
}

/// The queue's arguments: a quorum queue (replicated, and it counts deliveries), dead
/// letters to [`DEAD_LETTER_EXCHANGE`] under the queue's name.
fn queue_arguments(queue: &str, dead_letter_after: Option<u32>) -> FieldTable {
    let mut args = FieldTable::default();
    let text = |s: &str| AMQPValue::LongString(LongString::from(s.to_string()));
    args.insert("x-queue-type".into(), text("quorum"));
    args.insert("x-dead-letter-exchange".into(), text(DEAD_LETTER_EXCHANGE));
    args.insert("x-dead-letter-routing-key".into(), text(queue));
    if let Some(n) = dead_letter_after {
        let limit = i64::from(n + CRASH_ALLOWANCE);
        args.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(limit));
    }
    args
}

/// Declares the subscription's queue and its dead-letter queue, bound.
async fn declare_queues(
    ch: &Channel,
    sub: &Subscription,
    dead_letter_after: Option<u32>,
) -> Result<(), lapin::Error> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let queue = sub.queue.as_str();
    let args = queue_arguments(queue, dead_letter_after);
    ch.queue_declare(queue.into(), durable, args).await?;
    let bind = |q: String, exchange: &str, key: String| {
        ch.queue_bind(
            q.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
    };
    bind(sub.queue.clone(), EXCHANGE, format!("{}.#", sub.feed)).await?;
    let dead = format!("{queue}.dead");
    ch.queue_declare(dead.as_str().into(), durable, FieldTable::default())
        .await?;
    bind(dead, DEAD_LETTER_EXCHANGE, sub.queue.clone()).await
}

async fn consume_session(
    consumer: &Consumer,
    apply: &impl Apply,
    sub: &Subscription,
    broker: &Broker,
) -> Result<Infallible, BrokerError> {
    let conn = broker.connect(&format!("{} consumer", sub.queue)).await?;
    let ch = conn.create_channel().await?;
    declare_exchanges(&ch).await?;
    declare_queues(&ch, sub, consumer.dead_letter_after).await?;
    // Confirms for what this consumer dead-letters itself (acknowledgements are not
    // affected by them).
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    ch.basic_qos(PREFETCH, BasicQosOptions::default()).await?;
    let tag = format!("{}-{}", sub.queue, std::process::id());
    let mut deliveries = ch
        .basic_consume(
            sub.queue.as_str().into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(queue = %sub.queue, ack_after_commit = broker.ack_after_commit, "consuming from RabbitMQ");
    while let Some(delivery) = deliveries.next().await {
        take(consumer, apply, broker, &ch, &sub.queue, delivery?).await?;
    }
    Err(BrokerError::Cancelled(sub.queue.clone()))
}

/// A header of `delivery` as text.
fn header(delivery: &Delivery, name: &str) -> Option<String> {
    let headers = delivery.properties.headers().as_ref()?;
    match headers.inner().get(name)? {
        AMQPValue::LongString(s) => String::from_utf8(s.as_bytes().to_vec()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

/// Handles one delivery: apply, then acknowledge (or, for the control, the other way
/// round); a handler failure sends it back until the consumer parks it.
async fn take(
    consumer: &Consumer,
    apply: &impl Apply,
    broker: &Broker,
    ch: &Channel,
    queue: &str,
    delivery: Delivery,
) -> Result<(), BrokerError> {
    let mut event: Event = match serde_json::from_slice(&delivery.data) {
        Ok(e) => e,
        Err(e) => {
            let reason = format!("the message body is not an event: {e}");
            return dead_letter(ch, queue, &delivery, &reason).await;
        }
    };
    // The consumer span links to the relay's PRODUCER span, whose context the headers carry.
    if let Some(tp) = header(&delivery, "traceparent") {
        event.traceparent = Some(tp);
    }
    if let Some(b) = header(&delivery, "baggage") {
        event.baggage = Some(b);
    }
    if !broker.ack_after_commit {
        delivery.ack(BasicAckOptions::default()).await?;
    }
    let settled = match consumer.deliver(apply, event.clone()).await {
        Ok(_) => {
            consumer.failures.forget(event.id);
            true
        }
        Err(OutboxError::Handler { reason, .. }) => consumer.failed(&event, &reason).await?,
        Err(e) => {
            tracing::warn!(event_id = %event.id, error = %e, "cannot record the event; it will come again");
            false
        }
    };
    if broker.ack_after_commit {
        if settled {
            delivery.ack(BasicAckOptions::default()).await?;
        } else {
            let requeue = BasicNackOptions {
                requeue: true,
                ..Default::default()
            };
            delivery.nack(requeue).await?;
        }
    }
    Ok(())
}

/// Sends a message no handler can take to the dead-letter queue with `reason`, then
/// acknowledges it (nothing is half done: the copy is confirmed before the original goes).
async fn dead_letter(
    ch: &Channel,
    queue: &str,
    delivery: &Delivery,
    reason: &str,
) -> Result<(), BrokerError> {
    tracing::warn!(queue, reason, "dead-lettering a message");
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(
        ERROR_HEADER.into(),
        AMQPValue::LongString(LongString::from(reason.to_string())),
    );
    let properties = delivery.properties.clone().with_headers(headers);
    let confirm = ch
        .basic_publish(
            DEAD_LETTER_EXCHANGE.into(),
            queue.into(),
            BasicPublishOptions::default(),
            &delivery.data,
            properties,
        )
        .await?;
    await_confirm(Uuid::nil(), confirm).await?;
    delivery.ack(BasicAckOptions::default()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_queue_is_a_quorum_queue_that_dead_letters_under_its_own_name() {
        let args = queue_arguments("notifications.orders", Some(3));
        let get = |k: &str| args.inner().get(k).cloned();
        let text = |s: &str| Some(AMQPValue::LongString(LongString::from(s.to_string())));
        assert_eq!(get("x-queue-type"), text("quorum"));
        assert_eq!(get("x-dead-letter-exchange"), text(DEAD_LETTER_EXCHANGE));
        assert_eq!(
            get("x-dead-letter-routing-key"),
            text("notifications.orders")
        );
        assert_eq!(
            get("x-delivery-limit"),
            Some(AMQPValue::LongLongInt(i64::from(3 + CRASH_ALLOWANCE)))
        );
        // Dead letters off: the broker redelivers for ever, as the feed's consumer retries.
        assert!(
            queue_arguments("q", None)
                .inner()
                .get("x-delivery-limit")
                .is_none()
        );
    }

    #[tokio::test]
    async fn one_relay_at_a_time_holds_an_outbox_and_its_position_never_goes_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = crate::platform::outbox::open_db(&dir.path().join("o.sqlite"), "").expect("db");
        assert!(claim(&db, "orders", "a").await.expect("claim"));
        assert!(
            !claim(&db, "orders", "b").await.expect("claim"),
            "a holds it"
        );
        assert!(claim(&db, "orders", "a").await.expect("renew"));
        advance(&db, "orders", 7).await.expect("advance");
        advance(&db, "orders", 5).await.expect("advance");
        assert_eq!(position(&db, "orders").await.expect("position"), 7);
    }
}
