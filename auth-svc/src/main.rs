//! `auth-svc [serve | migrate | grant-admin <user> | revoke-admin <user>]`.

use auth_svc::AuthConfig;
use auth_svc::cli::Command;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = Command::parse(&args)?;
    common::telemetry::init("auth-svc");
    let config = AuthConfig::load()?;
    command
        .run(config)
        .await
        .inspect_err(|e| tracing::error!(error = format!("{e:#}"), "auth-svc failed"))
}
