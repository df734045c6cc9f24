//! `order-svc [serve | migrate | dlq list|replay ...]`.

use common::cli::ServiceCommand;
use order_svc::{Application, MIGRATIONS, OrderConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = ServiceCommand::from_args("order-svc")?;
    common::telemetry::init("order-svc");
    let config = OrderConfig::load()?;
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
