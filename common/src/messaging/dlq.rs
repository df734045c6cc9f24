//! `<service> dlq list|replay`: what sits in the dead-letter queues, and
//! moving it back once the cause is fixed.
//!
//! A replayed message goes to its own queue only (through the default
//! exchange, so no other subscriber sees it twice), unchanged: same body,
//! same id, same headers. A message that was in fact processed before it was
//! dead-lettered is recognised by the consumer's inbox and has no second
//! effect. Each message is acknowledged in the DLQ only after the broker
//! confirmed its copy in the queue, so a replay interrupted half-way loses
//! nothing (at worst a message is in both, and the inbox deduplicates).
//!
//! Listing reads the same way and puts each message back at the tail of its
//! DLQ as a copy, confirmed before the original is removed: listing never
//! counts as a failed delivery, so no delivery limit can ever drop a
//! dead-lettered message however often it is listed. A listing goes round
//! the whole queue (showing the first `--limit`), so the queue ends in its
//! original order and a dry run shows what the replay will move.

use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};
use secrecy::{ExposeSecret, SecretString};

use super::Topology;
use super::broker::BoxError;
use super::topology::queue_names;

/// What `dlq` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqCommand {
    /// `replay` (move back) rather than `list`.
    pub replay: bool,
    /// One queue (its name without prefix, e.g. `catalog.order-events`);
    /// `None`: every Shop queue.
    pub queue: Option<String>,
    /// At most this many messages per queue.
    pub limit: usize,
    /// With `replay`: say what would move, move nothing.
    pub dry_run: bool,
}

impl DlqCommand {
    /// Parses `list|replay [--queue Q] [--limit N] [--dry-run]`.
    pub fn parse(args: &[&str]) -> Result<Self, String> {
        let (replay, rest) = match args.split_first() {
            Some((&"list", rest)) => (false, rest),
            Some((&"replay", rest)) => (true, rest),
            _ => return Err("dlq list|replay [--queue Q] [--limit N] [--dry-run]".into()),
        };
        let mut command = Self {
            replay,
            queue: None,
            limit: 100,
            dry_run: false,
        };
        let mut rest = rest.iter();
        while let Some(arg) = rest.next() {
            match *arg {
                "--queue" => {
                    let queue = rest.next().ok_or("--queue needs a queue name")?;
                    if !queue_names().any(|q| q == *queue) {
                        let known: Vec<_> = queue_names().collect();
                        return Err(format!(
                            "unknown queue {queue}; Shop's queues: {}",
                            known.join(", ")
                        ));
                    }
                    command.queue = Some((*queue).to_string());
                }
                "--limit" => {
                    command.limit = rest
                        .next()
                        .and_then(|n| n.parse().ok())
                        .filter(|n| *n > 0)
                        .ok_or("--limit needs a positive number")?;
                }
                "--dry-run" => command.dry_run = true,
                other => return Err(format!("unknown option {other}")),
            }
        }
        Ok(command)
    }
}

/// One line about a dead-lettered message.
fn describe(delivery: &lapin::message::Delivery) -> String {
    let id = delivery
        .properties
        .message_id()
        .as_ref()
        .map_or("?".to_string(), |s| s.to_string());
    let kind = delivery
        .properties
        .kind()
        .as_ref()
        .map_or("?".to_string(), |s| s.to_string());
    let reason = delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-first-death-reason").cloned())
        .map_or("?".to_string(), |v| match v {
            AMQPValue::LongString(s) => s.to_string(),
            other => format!("{other:?}"),
        });
    format!("{id} {kind} (dead-lettered: {reason})")
}

/// The message's properties for its copy, without the broker's delivery
/// count: the copy is a new message, and a stale count would mislead
/// whoever reads it next.
fn copy_properties(properties: &BasicProperties) -> BasicProperties {
    let mut copy = properties.clone();
    if let Some(headers) = properties.headers() {
        let mut kept = FieldTable::default();
        for (name, value) in headers.inner() {
            if name.as_str() != "x-delivery-count" {
                kept.insert(name.clone(), value.clone());
            }
        }
        copy = copy.with_headers(kept);
    }
    copy
}

/// Whether `command` only reads (lists, or replays dry).
fn listing_only(command: &DlqCommand) -> bool {
    !command.replay || command.dry_run
}

/// Runs `command` against the broker at `url` under `prefix`; returns the
/// number of messages listed or moved. Prints one line per message.
pub async fn run(
    url: &SecretString,
    prefix: &str,
    command: &DlqCommand,
) -> Result<usize, BoxError> {
    let topology = Topology::new(prefix);
    let connection =
        Connection::connect(url.expose_secret(), ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let queues: Vec<&str> = match &command.queue {
        Some(queue) => queue_names().filter(|q| q == queue).collect(),
        None => queue_names().collect(),
    };
    let mut total = 0;
    for name in queues {
        let (queue, dlq) = (topology.queue(name), topology.dead_letter_queue(name));
        // At most what is there now: a listing's copies go to the tail of
        // the same queue and must not be read twice.
        let depth = channel
            .queue_declare(
                dlq.clone().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?
            .message_count();
        let depth = usize::try_from(depth).unwrap_or(usize::MAX);
        // A listing goes round the whole queue, showing the first `limit`,
        // so that the queue ends in its original order and a dry run shows
        // exactly what the replay after it will move.
        let to_read = if listing_only(command) {
            depth
        } else {
            command.limit.min(depth)
        };
        let (mut count, mut read) = (0, 0);
        while read < to_read {
            let Some(message) = channel
                .basic_get(dlq.clone().into(), BasicGetOptions { no_ack: false })
                .await?
            else {
                break;
            };
            let delivery = message.delivery;
            read += 1;
            let listing = listing_only(command);
            // Listing puts a copy back at the tail of the DLQ and removes the
            // one read, rather than handing it back unacknowledged: a return
            // counts as a failed delivery, and a quorum queue with a
            // delivery limit (RabbitMQ 4 gives every quorum queue one, 20 by
            // default) drops a message listed that often, for good. A
            // replay puts the copy into the message's own queue instead.
            let target = if listing { &dlq } else { &queue };
            let confirm = channel
                .basic_publish(
                    "".into(),
                    target.clone().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    &delivery.data,
                    copy_properties(&delivery.properties),
                )
                .await?
                .await?;
            let Confirmation::Ack(None) = confirm else {
                return Err(format!(
                    "the broker did not take the copy for {target}; nothing lost, stopping"
                )
                .into());
            };
            // Only once the copy is safe; should this ack be lost, the
            // message is there twice and the consumer's inbox tells.
            delivery.ack(BasicAckOptions::default()).await?;
            if !listing {
                count += 1;
                println!("{dlq} -> {queue}: {}", describe(&delivery));
            } else if count < command.limit {
                count += 1;
                let verb = if command.replay { "would replay " } else { "" };
                println!("{dlq}: {verb}{}", describe(&delivery));
            }
        }
        let what = match (command.replay, command.dry_run) {
            (false, _) => "listed",
            (true, true) => "would move",
            (true, false) => "moved",
        };
        println!("{dlq}: {what} {count} message(s)");
        total += count;
    }
    let _ = channel.close(200, "dlq done".into()).await;
    let _ = connection.close(200, "dlq done".into()).await;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_parse_and_bad_ones_are_named() {
        assert_eq!(
            DlqCommand::parse(&[
                "replay",
                "--queue",
                "catalog.order-events",
                "--limit",
                "5",
                "--dry-run"
            ]),
            Ok(DlqCommand {
                replay: true,
                queue: Some("catalog.order-events".into()),
                limit: 5,
                dry_run: true,
            })
        );
        assert_eq!(
            DlqCommand::parse(&["list"]).map(|c| (c.replay, c.limit)),
            Ok((false, 100))
        );
        assert!(DlqCommand::parse(&["replay", "--queue", "nope"]).is_err());
        assert!(DlqCommand::parse(&["replay", "--limit", "0"]).is_err());
        assert!(DlqCommand::parse(&["drop"]).is_err());
    }
}
