//! Statements through each connection's prepared-statement cache.
//!
//! `query(&str)` on tokio-postgres parses and plans the text anew on every
//! call, an extra round trip and most of the server's CPU for short
//! statements. These methods prepare each distinct SQL text once per pooled
//! connection (deadpool's `prepare_cached`) and then only bind and execute
//! it. Repositories use them for every statement.

use std::future::Future;

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{GenericClient, PgError};

/// Parameters of a statement.
pub type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// `query`, `query_one`, `query_opt` and `execute` with cached statements,
/// for connections and transactions alike.
pub trait Cached: GenericClient {
    /// Every row.
    fn query_cached<'a>(
        &'a self,
        sql: &'a str,
        params: Params<'a>,
    ) -> impl Future<Output = Result<Vec<Row>, PgError>> + Send + 'a
    where
        Self: Sized,
    {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.query(&statement, params).await
        }
    }

    /// Exactly one row.
    fn query_one_cached<'a>(
        &'a self,
        sql: &'a str,
        params: Params<'a>,
    ) -> impl Future<Output = Result<Row, PgError>> + Send + 'a
    where
        Self: Sized,
    {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.query_one(&statement, params).await
        }
    }

    /// At most one row.
    fn query_opt_cached<'a>(
        &'a self,
        sql: &'a str,
        params: Params<'a>,
    ) -> impl Future<Output = Result<Option<Row>, PgError>> + Send + 'a
    where
        Self: Sized,
    {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.query_opt(&statement, params).await
        }
    }

    /// The number of rows affected.
    fn execute_cached<'a>(
        &'a self,
        sql: &'a str,
        params: Params<'a>,
    ) -> impl Future<Output = Result<u64, PgError>> + Send + 'a
    where
        Self: Sized,
    {
        async move {
            let statement = self.prepare_cached(sql).await?;
            self.execute(&statement, params).await
        }
    }
}

impl<C: GenericClient> Cached for C {}
