//! The server library's error type and its `Result`. Every module returns these; HTTP
//! handlers turn them into a 500 in one place (`http::db`).

/// Errors of the server library.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// SQLite failed.
    #[error("database: {0}")]
    Db(#[source] rusqlite::Error),
    /// PostgreSQL failed.
    #[error("database: {0}")]
    Postgres(#[source] tokio_postgres::Error),
    /// No PostgreSQL connection could be had in time.
    #[error("database pool: {0}")]
    Pool(String),
    /// A task of the server's runtime failed.
    #[error("internal: {0}")]
    Internal(String),
    /// Binding the socket or starting the runtime failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The certificate or key could not be loaded.
    #[error("TLS: {0}")]
    Tls(String),
    /// Unusable configuration or database.
    #[error("configuration: {0}")]
    Config(String),
    /// A bad argument, e.g. an empty device id.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Stored data could not be read back.
    #[error("corrupt database: {0}")]
    Corrupt(String),
    /// JSON encoding failed.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl From<rusqlite::Error> for ServerError {
    /// A column that does not hold what the schema promises (e.g. a word outside its
    /// vocabulary) is [`ServerError::Corrupt`]; anything else is [`ServerError::Db`]. Neither
    /// message quotes the stored value.
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::InvalidColumnType(..) => {
                ServerError::Corrupt(format!("stored value unreadable: {e}"))
            }
            e => ServerError::Db(e),
        }
    }
}

impl From<tokio_postgres::Error> for ServerError {
    fn from(e: tokio_postgres::Error) -> Self {
        ServerError::Postgres(e)
    }
}

impl From<deadpool_postgres::PoolError> for ServerError {
    /// A failed connection attempt keeps its PostgreSQL error; a timeout or a closed pool is
    /// [`ServerError::Pool`].
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => ServerError::Postgres(e),
            e => ServerError::Pool(e.to_string()),
        }
    }
}

/// Result with [`ServerError`].
pub type Result<T, E = ServerError> = std::result::Result<T, E>;
