//! `catalog-svc [serve | migrate | dlq list|replay ...]`.

use catalog_svc::{Application, CatalogConfig, MIGRATIONS};
use common::cli::ServiceCommand;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = ServiceCommand::from_args("catalog-svc")?;
    common::telemetry::init("catalog-svc");
    let config = CatalogConfig::load()?;
    match command {
        ServiceCommand::Serve => {
            Application::build(config)
                .await?
                .run_until_stopped()
                .await?
        }
        ServiceCommand::Migrate => {
            common::cli::migrate(&config.service.database_url, MIGRATIONS).await?
        }
        ServiceCommand::Dlq(dlq) => common::cli::dlq(&config.service, &dlq)
            .await
            .map_err(|e| anyhow::anyhow!(e))?,
    }
    Ok(())
}
