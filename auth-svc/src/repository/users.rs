//! The `users` table.

use chrono::{DateTime, Utc};
use common::auth::Role;
use common::db::{Cached as _, DbError, GenericClient};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::domain::NewUser;

/// A stored user.
#[derive(Debug, Clone)]
pub struct UserRecord {
    /// Id (UUID v7: time-ordered, index-friendly).
    pub id: Uuid,
    /// Username as registered.
    pub username: String,
    /// Email as registered.
    pub email: String,
    /// bcrypt hash of the pre-hashed password.
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// Registration time.
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, username, email, password_hash, role, created_at";

impl TryFrom<Row> for UserRecord {
    type Error = DbError;

    fn try_from(row: Row) -> Result<Self, DbError> {
        let role: String = row.try_get("role")?;
        Ok(Self {
            id: row.try_get("id")?,
            username: row.try_get("username")?,
            email: row.try_get("email")?,
            password_hash: row.try_get("password_hash")?,
            // The CHECK constraint admits only known roles; anything else
            // would be a schema change this code does not know, so it is
            // treated as the least privileged role.
            role: role.parse().unwrap_or(Role::Customer),
            created_at: row.try_get("created_at")?,
        })
    }
}

/// Name of the unique index a duplicate username violates.
pub const USERNAME_UNIQUE: &str = "users_username_key";
/// Name of the unique index a duplicate email violates.
pub const EMAIL_UNIQUE: &str = "users_email_key";

/// Inserts a user; a duplicate surfaces as a unique violation on
/// [`USERNAME_UNIQUE`] or [`EMAIL_UNIQUE`].
pub async fn insert(
    client: &impl GenericClient,
    user: &NewUser,
    password_hash: &str,
) -> Result<UserRecord, DbError> {
    let sql = format!(
        "INSERT INTO users (id, username, email, password_hash) VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"
    );
    let row = client
        .query_one_cached(
            &sql,
            &[
                &Uuid::now_v7(),
                &user.username.as_str(),
                &user.email.as_str(),
                &password_hash,
            ],
        )
        .await?;
    row.try_into()
}

/// Finds a user by username or email, ignoring case.
pub async fn find_by_login(
    client: &impl GenericClient,
    login: &str,
) -> Result<Option<UserRecord>, DbError> {
    // Usernames cannot contain '@' and emails must, so at most one row matches.
    let sql = format!(
        "SELECT {COLUMNS} FROM users WHERE lower(username) = lower($1) OR lower(email) = lower($1)"
    );
    client
        .query_opt_cached(&sql, &[&login])
        .await?
        .map(TryInto::try_into)
        .transpose()
}

/// Whether the username and the email are registered already (ignoring
/// case), in that order.
pub async fn taken(
    client: &impl GenericClient,
    username: &str,
    email: &str,
) -> Result<(bool, bool), DbError> {
    let row = client
        .query_one_cached(
            "SELECT EXISTS (SELECT 1 FROM users WHERE lower(username) = lower($1)), \
                    EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($2))",
            &[&username, &email],
        )
        .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// Finds a user by id.
pub async fn find_by_id(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<UserRecord>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    client
        .query_opt_cached(&sql, &[&id])
        .await?
        .map(TryInto::try_into)
        .transpose()
}

/// Sets a user's role; false when no such user exists.
pub async fn set_role(
    client: &impl GenericClient,
    username: &str,
    role: Role,
) -> Result<bool, DbError> {
    let updated = client
        .execute_cached(
            "UPDATE users SET role = $2, updated_at = now() WHERE lower(username) = lower($1)",
            &[&username, &role.as_str()],
        )
        .await?;
    Ok(updated == 1)
}
