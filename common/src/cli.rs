//! The command line every service shares: `<service> [serve | migrate]`.

/// What a service binary was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceCommand {
    /// Migrate, then serve (the default).
    Serve,
    /// Apply pending migrations and exit (the Helm hook Job).
    Migrate,
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
            _ => Err(format!("usage: {service} [serve | migrate]")),
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
    }
}
