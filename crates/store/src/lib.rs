//! softstake's SQL ledger.
//!
//! One [`Store`] API over two databases, chosen by the URL: SQLite (embedded
//! default, `sqlite://path`, created on first run, WAL mode) and PostgreSQL
//! (`postgres://...`, production). Both run the migrations under
//! `migrations/sqlite` and `migrations/postgres`, which are kept equivalent.
//!
//! Every query is written once, with `$N` placeholders that both SQLite and
//! PostgreSQL accept, and run on whichever pool is open ([`on_pool!`]). Money
//! is stored as canonical decimal text of base units on both (see
//! `migrations/README.md`), so amounts up to `u128::MAX` round-trip exactly.

mod advances;
mod balances;
mod books;
mod carries;
mod distribution;
mod error;
mod fence;
mod foreign;
mod journal;
mod loss_rule;
mod losses;
mod outbox;
mod rewards;
mod status;
mod withdrawals;

pub use advances::{Advance, AdvanceLine};
pub use balances::{BalanceUpdate, IngestReport, MAX_BATCH, MAX_FILE};
pub use books::{
    Booked, Books, BooksPolicy, Declaration, Declared, Direction, FeeBearer, FlowRecord, Owed,
    Purpose, RECONCILED_VALIDATOR, Resolution, Snapshot, SnapshotInput, reconciled_key,
    suspense_income_key,
};
pub use distribution::{DistributeOptions, DistributeOutcome, DistributionSummary, VerifyReport};
pub use error::StoreError;
pub use fence::{Fence, FenceSlot, PG_LOCK_KEY, claim_leadership};
pub use foreign::ForeignTotal;
pub use journal::{Attempt, JournalOp, NewOp, OpState, Recovery, recovery_action};
pub use loss_rule::{LossRecord, LossShareLine, UsersLosses};
pub use losses::{Bunker, BunkerAction, BunkerCause, ValidatorMark};
pub use outbox::{
    MAX_PAGE as OUTBOX_MAX_PAGE, OutboxCredit, StatementLine, credit_key, parse_credit_key,
    statement_csv,
};
pub use rewards::{FUTURE_TOLERANCE_SECS, NewReward, Recorded, RewardRecord};
pub use status::{ChainStatus, StoreStatus};
pub use withdrawals::{Liquidity, WithdrawalDecision, WithdrawalRequest};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

#[derive(Debug, Clone)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever pool the store has. The body
/// is compiled once per backend, so it must be valid SQL for both.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.db {
            $crate::Db::Sqlite($pool) => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Starts a write transaction. On SQLite it is `BEGIN IMMEDIATE`: a
/// deferred transaction that reads, then writes, fails with
/// SQLITE_BUSY_SNAPSHOT (no busy wait) when another connection committed
/// in between, which the daemon's chain loops and the API do all the time;
/// taking the write lock up front makes it wait its turn (busy_timeout).
pub(crate) trait BeginWrite {
    /// The database.
    type Db: sqlx::Database;
    /// A transaction holding the write lock (SQLite) or a plain one.
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
    + Send;
}

impl BeginWrite for sqlx::SqlitePool {
    type Db = sqlx::Sqlite;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<
        Output = Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error>,
    > + Send {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

impl BeginWrite for sqlx::PgPool {
    type Db = sqlx::Postgres;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<
        Output = Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error>,
    > + Send {
        self.begin()
    }
}

/// A handle to the ledger. Cheap to clone (pools are shared).
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
    url_redacted: String,
    /// Set on the chain loops' store on PostgreSQL: every write then proves
    /// this daemon still leads (see [`fence`]).
    fence: Option<FenceSlot>,
}

/// Options for [`Store::connect`].
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Pool size.
    pub max_connections: u32,
    /// How long to wait for a connection.
    pub acquire_timeout: Duration,
    /// SQLite: create the file if it does not exist (commands that only read
    /// set this to false so they never leave an empty database behind).
    pub create_if_missing: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(10),
            create_if_missing: true,
        }
    }
}

impl Store {
    /// This store with its writes fenced by `slot` (PostgreSQL; a SQLite
    /// store ignores it): each write transaction fails with
    /// [`StoreError::Fenced`] unless the slot's fence proves this daemon
    /// still leads.
    pub fn with_fence(&self, slot: FenceSlot) -> Store {
        Store {
            fence: Some(slot),
            ..self.clone()
        }
    }

    /// Opens the database at `url` (`sqlite://PATH` creates the file if
    /// missing; `postgres://...`). Runs no migrations.
    pub async fn connect(url: &str, opts: &ConnectOptions) -> Result<Store, StoreError> {
        let url_redacted = redact(url);
        let connect_err = |e: sqlx::Error| StoreError::Connect {
            url: url_redacted.clone(),
            reason: error::describe(&e),
        };
        let db = if url.starts_with("sqlite:") {
            let o = SqliteConnectOptions::from_str(url).map_err(connect_err)?;
            let path = o.get_filename().to_path_buf();
            if !opts.create_if_missing && !path.as_os_str().is_empty() && !path.exists() {
                return Err(StoreError::Connect {
                    url: url_redacted,
                    reason: format!(
                        "no database file at {}: run `softstake migrate` first (it creates and migrates it), or check database.url",
                        path.display()
                    ),
                });
            }
            let o = o
                .create_if_missing(opts.create_if_missing)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5));
            let pool = SqlitePoolOptions::new()
                .max_connections(opts.max_connections)
                .acquire_timeout(opts.acquire_timeout)
                .connect_with(o)
                .await
                .map_err(connect_err)?;
            Db::Sqlite(pool)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let o = PgConnectOptions::from_str(url).map_err(connect_err)?;
            // One direct connection first: the pool would only report
            // "timed out" after acquire_timeout, hiding a refused
            // connection, a wrong password or an unknown database.
            match tokio::time::timeout(
                opts.acquire_timeout,
                <sqlx::PgConnection as sqlx::Connection>::connect_with(&o),
            )
            .await
            {
                Ok(Ok(c)) => {
                    let _ = sqlx::Connection::close(c).await;
                }
                Ok(Err(e)) => return Err(connect_err(e)),
                Err(_) => {
                    return Err(StoreError::Connect {
                        url: url_redacted,
                        reason: format!(
                            "the server did not answer within {} s",
                            opts.acquire_timeout.as_secs()
                        ),
                    });
                }
            }
            let pool = PgPoolOptions::new()
                .max_connections(opts.max_connections)
                .acquire_timeout(opts.acquire_timeout)
                .connect_with(o)
                .await
                .map_err(connect_err)?;
            Db::Postgres(pool)
        } else {
            return Err(StoreError::Connect {
                url: url_redacted,
                reason: "the URL must start with sqlite:// or postgres://".into(),
            });
        };
        Ok(Store {
            db,
            url_redacted,
            fence: None,
        })
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// The URL with any password redacted, for logs.
    pub fn url_redacted(&self) -> &str {
        &self.url_redacted
    }

    /// The migrations this binary carries for this backend.
    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match self.db {
            Db::Sqlite(_) => &SQLITE_MIGRATIONS,
            Db::Postgres(_) => &POSTGRES_MIGRATIONS,
        }
    }

    /// Fails unless the database accepts writes (a read-only SQLite file or
    /// `mode=ro` URL, a PostgreSQL replica or read-only transaction
    /// default): an `UPDATE` that matches no row, rolled back.
    pub async fn check_writable(&self) -> Result<(), StoreError> {
        let r: Result<(), sqlx::Error> = on_pool!(self, pool => {
            async {
                let mut tx = crate::BeginWrite::begin_write(pool).await?;
                sqlx::query("UPDATE leadership SET term = term WHERE id = 0")
                    .execute(&mut *tx)
                    .await?;
                tx.rollback().await
            }
            .await
        });
        r.map_err(|e| StoreError::ReadOnly(error::describe(&e)))
    }

    /// Highest migration version this binary knows.
    pub fn binary_schema_version(&self) -> i64 {
        self.migrator().iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// Highest migration version applied to the database (0 if none).
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let exists: bool = on_pool!(self, pool => {
            let q = match self.backend() {
                Backend::Sqlite => "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
                Backend::Postgres => "SELECT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations')",
            };
            sqlx::query_scalar(q).fetch_one(pool).await?
        });
        if !exists {
            return Ok(0);
        }
        let v: Option<i64> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(pool)
                .await?
        });
        Ok(v.unwrap_or(0))
    }

    /// Applies pending migrations. Refuses a database whose schema is newer
    /// than this binary, before changing anything.
    pub async fn migrate(&self) -> Result<MigrateReport, StoreError> {
        let before = self.schema_version().await?;
        let binary = self.binary_schema_version();
        if before > binary {
            return Err(StoreError::SchemaTooNew {
                database: before,
                binary,
            });
        }
        let m = self.migrator();
        let res = on_pool!(self, pool => m.run(pool).await);
        res.map_err(|e| StoreError::Migrate(e.to_string()))?;
        let after = self.schema_version().await?;
        Ok(MigrateReport { before, after })
    }

    /// Fails unless the schema is exactly the binary's (for commands that
    /// only read, so they never run against a half-migrated database).
    pub async fn require_current_schema(&self) -> Result<(), StoreError> {
        let db = self.schema_version().await?;
        let binary = self.binary_schema_version();
        if db > binary {
            Err(StoreError::SchemaTooNew {
                database: db,
                binary,
            })
        } else if db < binary {
            Err(StoreError::SchemaTooOld {
                database: db,
                binary,
            })
        } else {
            Ok(())
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await);
    }

    /// The SQLite file path, if this is a file-backed SQLite store.
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        match &self.db {
            Db::Sqlite(p) => {
                let f = p.connect_options().get_filename().to_path_buf();
                (!f.as_os_str().is_empty() && f.as_os_str() != ":memory:").then_some(f)
            }
            Db::Postgres(_) => None,
        }
    }

    /// An online, consistent copy of a SQLite store into a new file
    /// (`VACUUM INTO`), safe while the daemon runs. PostgreSQL is backed up
    /// with its own tools (pg_dump, or base backups with WAL archiving for
    /// point-in-time recovery): this refuses.
    pub async fn sqlite_backup(&self, to: &std::path::Path) -> Result<(), StoreError> {
        let Db::Sqlite(pool) = &self.db else {
            return Err(StoreError::Invalid(
                "a PostgreSQL ledger is backed up with pg_dump or base backups and WAL archiving (see README, Backup and restore)".into(),
            ));
        };
        if to.exists() {
            return Err(StoreError::Invalid(format!(
                "{} exists; a backup is written to a new file",
                to.display()
            )));
        }
        let path = to
            .to_str()
            .ok_or_else(|| StoreError::Invalid(format!("{} is not a UTF-8 path", to.display())))?;
        sqlx::query("VACUUM INTO ?")
            .bind(path)
            .execute(pool)
            .await?;
        Ok(())
    }

    /// The SQLite pool (benchmarks and tests that must bypass the API).
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.db {
            Db::Sqlite(p) => Some(p),
            Db::Postgres(_) => None,
        }
    }

    /// The PostgreSQL pool, for features that exist only there (advisory
    /// locks, COPY).
    pub fn pg_pool(&self) -> Option<&PgPool> {
        match &self.db {
            Db::Postgres(p) => Some(p),
            Db::Sqlite(_) => None,
        }
    }
}

/// What [`Store::migrate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrateReport {
    /// Schema version before.
    pub before: i64,
    /// Schema version after.
    pub after: i64,
}

pub use softstake_core::secret::redact_url as redact;

/// A transaction-scoped lock per chain, for read-modify-write of one asset's
/// books (distributions, withdrawal reservations). SQLite: the first write
/// takes the database write lock. PostgreSQL: an advisory lock.
pub(crate) trait AssetLock<DB: sqlx::Database> {
    /// Takes the asset's lock for a distribution (exclusive).
    async fn lock(
        tx: &mut sqlx::Transaction<'_, DB>,
        chain: softstake_core::ChainId,
    ) -> Result<(), StoreError>;
    /// Takes the locks of `assets` (sorted) shared, for balance ingest: it
    /// waits for a distribution in progress, not for other ingests.
    async fn share(tx: &mut sqlx::Transaction<'_, DB>, assets: &[&str]) -> Result<(), StoreError>;
}

impl AssetLock<sqlx::Sqlite> for Store {
    async fn lock(
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        chain: softstake_core::ChainId,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO chain_state (chain) VALUES ($1) ON CONFLICT (chain) DO NOTHING")
            .bind(chain.as_str())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn share(
        _tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        _assets: &[&str],
    ) -> Result<(), StoreError> {
        // Write transactions start with BEGIN IMMEDIATE: already serialized.
        Ok(())
    }
}

impl AssetLock<sqlx::Postgres> for Store {
    async fn lock(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        chain: softstake_core::ChainId,
    ) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock(7402, hashtext($1))")
            .bind(chain.asset())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn share(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        assets: &[&str],
    ) -> Result<(), StoreError> {
        for a in assets {
            sqlx::query("SELECT pg_advisory_xact_lock_shared(7402, hashtext($1))")
                .bind(*a)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}

/// The exact sum of stored amounts from `column`.
pub(crate) fn sum_amounts(
    column: &str,
    values: &[String],
) -> Result<softstake_core::Amount, StoreError> {
    let amounts = values
        .iter()
        .map(|v| parse_amount(column, v))
        .collect::<Result<Vec<_>, _>>()?;
    softstake_core::Amount::checked_sum(amounts)
        .ok_or_else(|| StoreError::Corrupt(format!("sum of {column} overflows")))
}

pub(crate) fn parse_amount(column: &str, s: &str) -> Result<softstake_core::Amount, StoreError> {
    s.parse()
        .map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}
