//! Account use cases.

use common::db::{self, PgPool};
use common::messaging::enqueue;
use common::messaging::events::{Envelope, UserRegistered};

use crate::domain::NewUser;
use crate::error::ApiError;
use crate::repository::users::{self, UserRecord};

/// Fails with `UsernameTaken` or `EmailTaken` when either is registered
/// already (ignoring case).
pub async fn ensure_available(pool: &PgPool, user: &NewUser) -> Result<(), ApiError> {
    let client = db::client(pool).await?;
    let (username_taken, email_taken) =
        users::taken(&client, user.username.as_str(), user.email.as_str()).await?;
    if username_taken {
        Err(ApiError::UsernameTaken)
    } else if email_taken {
        Err(ApiError::EmailTaken)
    } else {
        Ok(())
    }
}

/// Stores a new user and its `user.registered` event in one transaction.
pub async fn register(
    pool: &PgPool,
    user: &NewUser,
    password_hash: &str,
    correlation_id: String,
) -> Result<UserRecord, ApiError> {
    let mut client = db::client(pool).await?;
    let tx = client.transaction().await.map_err(db::DbError::from)?;
    let record = users::insert(&tx, user, password_hash).await?;
    let event = UserRegistered {
        user_id: record.id,
        username: record.username.clone(),
    };
    enqueue(&tx, &Envelope::new("auth-svc", correlation_id, None, event)).await?;
    common::messaging::commit(tx).await?;
    Ok(record)
}
