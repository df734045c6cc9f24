//! The command line: `auth-svc [serve | migrate | dlq ... | grant-admin <user> | revoke-admin <user>]`.

use anyhow::{Context as _, bail};
use common::auth::Role;
use common::cli::ServiceCommand;

use crate::config::AuthConfig;
use crate::startup::{Application, MIGRATIONS};

/// What the binary was asked to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// `serve` (the default) or `migrate`, as every service.
    Service(ServiceCommand),
    /// Give a user the `admin` role, or take it back; effective at their next login.
    SetRole {
        /// Whose role changes.
        username: String,
        /// The new role.
        role: Role,
    },
}

const USAGE: &str = "usage: auth-svc [serve | migrate | dlq list|replay [--queue Q] [--limit N] [--dry-run] | grant-admin <username> | revoke-admin <username>]";

impl Command {
    /// Parses the arguments after the program name.
    pub fn parse(args: &[String]) -> anyhow::Result<Self> {
        if let Ok(command) = ServiceCommand::parse("auth-svc", args) {
            return Ok(Command::Service(command));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Ok(match args.as_slice() {
            ["grant-admin", user] => Command::SetRole {
                username: user.to_string(),
                role: Role::Admin,
            },
            ["revoke-admin", user] => Command::SetRole {
                username: user.to_string(),
                role: Role::Customer,
            },
            _ => bail!(USAGE),
        })
    }

    /// Runs the command to completion.
    pub async fn run(self, config: AuthConfig) -> anyhow::Result<()> {
        match self {
            Command::Service(ServiceCommand::Serve) => {
                Application::build(config)
                    .await?
                    .run_until_stopped()
                    .await?
            }
            Command::Service(ServiceCommand::Migrate) => {
                common::cli::migrate(&config.service.database_url, MIGRATIONS).await?
            }
            Command::Service(ServiceCommand::Dlq(dlq)) => common::cli::dlq(&config.service, &dlq)
                .await
                .map_err(|e| anyhow::anyhow!(e))?,
            Command::SetRole { username, role } => {
                common::db::migrate(&config.service.database_url, MIGRATIONS).await?;
                let pool = common::db::pool(&config.service.database_url, 1)?;
                let client = common::db::client(&pool).await.context("database")?;
                if !crate::repository::users::set_role(&client, &username, role).await? {
                    bail!("no user named {username:?}");
                }
                println!(
                    "{username} is now {}; it applies from their next login",
                    role.as_str()
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Command> {
        Command::parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn parses_every_command_and_rejects_the_rest() {
        assert_eq!(
            parse(&[]).ok(),
            Some(Command::Service(ServiceCommand::Serve))
        );
        assert_eq!(
            parse(&["migrate"]).ok(),
            Some(Command::Service(ServiceCommand::Migrate))
        );
        assert_eq!(
            parse(&["grant-admin", "bob"]).ok(),
            Some(Command::SetRole {
                username: "bob".into(),
                role: Role::Admin
            })
        );
        assert!(parse(&["grant-admin"]).is_err());
        assert!(parse(&["frobnicate"]).is_err());
    }
}
