//! Store errors, split into retryable and fatal.

/// Errors from the store. Messages never contain credentials.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Cannot open the database.
    #[error("cannot open database {url}: {reason}")]
    Connect {
        /// URL with password redacted.
        url: String,
        /// Why.
        reason: String,
    },
    /// The database was migrated by a newer softstake.
    #[error(
        "database schema is at version {database}, newer than this binary's {binary}: upgrade softstake (nothing was changed)"
    )]
    SchemaTooNew {
        /// Version in the database.
        database: i64,
        /// Newest version this binary knows.
        binary: i64,
    },
    /// The database needs `softstake migrate`.
    #[error(
        "database schema is at version {database}, this binary needs {binary}: run `softstake migrate`"
    )]
    SchemaTooOld {
        /// Version in the database.
        database: i64,
        /// Version this binary needs.
        binary: i64,
    },
    /// A migration failed (its transaction was rolled back).
    #[error("migration failed: {0}")]
    Migrate(String),
    /// Input refused; nothing was written.
    #[error("{0}")]
    Invalid(String),
    /// A reward whose period ends after now (plus the tolerance): a wrong
    /// manual entry, or a node whose clock runs ahead of ours. Refused,
    /// never recorded or distributed; retryable, since time catches up.
    #[error(
        "reward period ends at {end}, after now ({now}) + {tolerance_secs} s: a reward from the future is neither recorded nor distributed (is the node's clock ahead?)"
    )]
    FutureReward {
        /// Period end.
        end: softstake_core::Timestamp,
        /// Our time.
        now: softstake_core::Timestamp,
        /// Allowed clock difference, seconds.
        tolerance_secs: i64,
    },
    /// A loss of the chain waits for its allocation to users (the `users`
    /// rule): its rewards are distributed once it is allocated, so every
    /// credit is netted against it. Retryable (the next snapshot allocates).
    #[error("{0}")]
    LossPending(String),
    /// The database refuses writes (read-only file, replica).
    #[error("the database does not accept writes: {0}")]
    ReadOnly(String),
    /// This daemon no longer leads (or never did): a write that acts on a
    /// chain was refused by the fence, and nothing was written.
    #[error("fenced: {0}")]
    Fenced(String),
    /// A stored value cannot be read back (should never happen: CHECK constraints).
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// A database error.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

impl StoreError {
    /// Whether retrying the same call later can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Db(e) => {
                matches!(
                    e,
                    sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
                ) || describe(e).contains("database is locked")
            }
            StoreError::Connect { .. }
            | StoreError::FutureReward { .. }
            | StoreError::LossPending(_) => true,
            _ => false,
        }
    }
}

/// A one-line description of an sqlx error.
pub(crate) fn describe(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => d.message().to_owned(),
        other => other.to_string(),
    }
}
