//! Who runs the loops.
//!
//! - **PostgreSQL**: several daemons may share a database; only the holder
//!   of a session-level advisory lock, taken on a dedicated connection
//!   outside the pool, runs the chain loops. The others stand by (they serve
//!   the read API and accept the exchange's writes, which are transactional)
//!   and try the lock every [`POLL`]; when the leader dies its session ends,
//!   PostgreSQL releases the lock, and a standby takes over within about a
//!   second. The leader checks its lock connection every [`POLL`] and steps
//!   down at once (aborting its cycles, which the journal treats like a
//!   crash) if the connection fails.
//! - **SQLite**: one daemon per database file. An exclusive lock on
//!   `<file>.lock` is taken at start-up; a second daemon on the same file
//!   refuses to start, naming the file.

use sqlx::Connection;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::watch;

/// How often a standby tries the lock and a leader checks its connection.
pub const POLL: Duration = Duration::from_millis(500);

/// The advisory lock key ("softstak" as big-endian bytes).
pub const PG_LOCK_KEY: i64 = 0x736f_6674_7374_616b;

/// Errors taking leadership at start-up.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// Another daemon holds the SQLite file.
    #[error(
        "another softstake daemon is already running on {db} (it holds {lock}); stop it first, or use PostgreSQL to run a standby"
    )]
    SqliteBusy {
        /// Database file.
        db: String,
        /// Lock file.
        lock: String,
    },
    /// The lock file cannot be opened.
    #[error("cannot open lock file {path}: {reason}")]
    LockFile {
        /// Lock file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Holds the SQLite lock for the daemon's life.
#[derive(Debug)]
pub struct SqliteLock {
    _file: File,
    path: PathBuf,
}

impl SqliteLock {
    /// Takes the exclusive lock for `db`, or says who holds it.
    pub fn acquire(db: &Path) -> Result<SqliteLock, LeaderError> {
        let mut name = db.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| LeaderError::LockFile {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        match file.try_lock() {
            Ok(()) => Ok(SqliteLock { _file: file, path }),
            Err(std::fs::TryLockError::WouldBlock) => Err(LeaderError::SqliteBusy {
                db: db.display().to_string(),
                lock: path.display().to_string(),
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(LeaderError::LockFile {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Campaigns for the PostgreSQL leader lock until `shutdown` turns true,
/// publishing leadership on `tx`. Never returns an error: connection
/// failures mean "not leader" and are retried.
pub async fn pg_campaign(
    url: String,
    tx: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conn: Option<sqlx::PgConnection> = None;
    let mut logged_standby = false;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let leader = *tx.borrow();
        match conn.as_mut() {
            None => match sqlx::PgConnection::connect(&url).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "leader election: cannot connect; retrying");
                }
            },
            Some(c) if leader => {
                // Still alive? If not, step down at once.
                if let Err(e) = sqlx::query("SELECT 1").execute(&mut *c).await {
                    tracing::error!(error = %e, "leader lock connection lost: stepping down");
                    tx.send_replace(false);
                    conn = None;
                }
            }
            Some(c) => {
                let got: Result<bool, _> = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(PG_LOCK_KEY)
                    .fetch_one(&mut *c)
                    .await;
                match got {
                    Ok(true) => {
                        tracing::info!("leader lock acquired: this instance runs the chain loops");
                        tx.send_replace(true);
                        logged_standby = false;
                    }
                    Ok(false) => {
                        if !logged_standby {
                            tracing::info!(
                                "another instance is leader: standing by (read API only)"
                            );
                            logged_standby = true;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "leader election query failed; reconnecting");
                        conn = None;
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.changed() => {}
        }
    }
    if let Some(mut c) = conn {
        if *tx.borrow() {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(PG_LOCK_KEY)
                .execute(&mut c)
                .await;
        }
        let _ = c.close().await;
    }
    tx.send_replace(false);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_sqlite_daemon_is_refused_with_the_file_named() {
        let dir = tempfile_dir();
        let db = dir.join("s.db");
        let first = SqliteLock::acquire(&db).unwrap();
        let err = SqliteLock::acquire(&db).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("already running") && msg.contains("s.db"),
            "{msg}"
        );
        drop(first);
        // Released with the first daemon.
        assert!(SqliteLock::acquire(&db).is_ok());
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("softstake-lock-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
