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

use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::AMQPValue;
use lapin::{Confirmation, Connection, ConnectionProperties};
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
        let mut count = 0;
        while count < command.limit {
            let Some(message) = channel
                .basic_get(dlq.clone().into(), BasicGetOptions { no_ack: false })
                .await?
            else {
                break;
            };
            let delivery = message.delivery;
            count += 1;
            if !command.replay || command.dry_run {
                // Left unacknowledged: back in the DLQ when the channel closes.
                let verb = if command.replay { "would replay " } else { "" };
                println!("{dlq}: {verb}{}", describe(&delivery));
                continue;
            }
            let confirm = channel
                .basic_publish(
                    "".into(),
                    queue.clone().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    &delivery.data,
                    delivery.properties.clone(),
                )
                .await?
                .await?;
            match confirm {
                Confirmation::Ack(None) => {
                    delivery.ack(BasicAckOptions::default()).await?;
                    println!("{dlq} -> {queue}: {}", describe(&delivery));
                }
                _ => {
                    return Err(format!(
                        "the broker did not take the copy for {queue}; nothing lost, stopping"
                    )
                    .into());
                }
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
