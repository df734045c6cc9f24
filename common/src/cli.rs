//! The command line every service shares:
//! `<service> [serve | migrate | dlq list|replay [--queue Q] [--limit N] [--dry-run]]`.

use crate::messaging::dlq::DlqCommand;

/// The usage line of the shared commands.
pub const USAGE: &str = "[serve | migrate | dlq list|replay [--queue Q] [--limit N] [--dry-run]]";

/// What a service binary was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceCommand {
    /// Migrate, then serve (the default).
    Serve,
    /// Apply pending migrations and exit (the Helm hook Job).
    Migrate,
    /// List the dead-letter queues, or move their messages back.
    Dlq(DlqCommand),
}

impl ServiceCommand {
    /// Parses the arguments after the program name.
    pub fn parse(service: &str, args: &[String]) -> Result<Self, String> {
        match args
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            [] | ["serve"] => Ok(Self::Serve),
            ["migrate"] => Ok(Self::Migrate),
            ["dlq", rest @ ..] => DlqCommand::parse(rest)
                .map(Self::Dlq)
                .map_err(|e| format!("{e}\nusage: {service} {USAGE}")),
            _ => Err(format!("usage: {service} {USAGE}")),
        }
    }

    /// Parses the process arguments.
    pub fn from_args(service: &str) -> Result<Self, UsageError> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        Self::parse(service, &args).map_err(UsageError)
    }
}

/// `<service> migrate`: applies the pending migrations and says how many.
pub async fn migrate(
    database_url: &secrecy::SecretString,
    migrations: diesel_migrations::EmbeddedMigrations,
) -> Result<(), crate::db::MigrationError> {
    let applied = crate::db::migrate(database_url, migrations).await?;
    println!("applied {} migration(s)", applied.len());
    Ok(())
}

/// `<service> dlq ...`: lists or replays the dead-letter queues of the
/// broker and prefix in `config`.
pub async fn dlq(
    config: &crate::config::ServiceConfig,
    command: &DlqCommand,
) -> Result<(), crate::messaging::broker::BoxError> {
    crate::messaging::dlq::run(&config.amqp_url, &config.amqp_prefix, command).await?;
    Ok(())
}

/// Wrong arguments; the message is the usage line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_serve_and_migrate_only() {
        let parse = |args: &[&str]| {
            ServiceCommand::parse(
                "svc",
                &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(parse(&[]), Ok(ServiceCommand::Serve));
        assert_eq!(parse(&["serve"]), Ok(ServiceCommand::Serve));
        assert_eq!(parse(&["migrate"]), Ok(ServiceCommand::Migrate));
        assert!(parse(&["bogus"]).is_err());
        assert!(matches!(
            parse(&["dlq", "replay", "--dry-run"]),
            Ok(ServiceCommand::Dlq(DlqCommand {
                replay: true,
                dry_run: true,
                ..
            }))
        ));
        assert!(parse(&["dlq"]).is_err());
    }
}
