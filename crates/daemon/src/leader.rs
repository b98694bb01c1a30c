//! Who runs the loops.
//!
//! - **PostgreSQL**: several daemons may share a database; only the holder
//!   of a session-level advisory lock, taken on a dedicated connection
//!   outside the pool, runs the chain loops. The others stand by (they serve
//!   the read API and accept the exchange's writes, which are transactional)
//!   and try the lock every [`POLL`]; when the leader dies its session ends,
//!   PostgreSQL releases the lock, and a standby takes over within about a
//!   second. Taking the lock starts a new **term** in the database
//!   (`softstake_store::claim_leadership`), and the chain loops' store is
//!   fenced by it: each of their writes proves, in its own transaction, that
//!   the term is still this daemon's and its lock session still holds the
//!   lock, so a deposed leader that has not noticed yet cannot write
//!   (`softstake_store::fence`).
//! - The leader checks its lock connection every [`POLL`], with a
//!   [`CHECK_TIMEOUT`], and steps down (clearing its fence, aborting its
//!   cycles, which the journal treats like a crash) when the check fails or
//!   does not answer. The lock session asks the server for TCP keepalives
//!   ([`KEEPALIVE`]) and a statement timeout, so when the leader's host
//!   disappears the server ends its session, and releases the lock, within
//!   about `idle + interval x count` = 11 s instead of the OS default
//!   (2 h 11 min).
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

/// How long a leader waits for its lock connection to answer a check
/// before it steps down.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Server-side TCP keepalive of the lock session: idle seconds, interval
/// seconds, probes.
pub const KEEPALIVE: (u32, u32, u32) = (5, 2, 3);

pub use softstake_store::PG_LOCK_KEY;

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

/// The lock session's connection options: keepalives the server applies to
/// its socket, and a statement timeout.
fn lock_options(url: &str) -> Result<sqlx::postgres::PgConnectOptions, sqlx::Error> {
    let (idle, interval, count) = KEEPALIVE;
    Ok(url.parse::<sqlx::postgres::PgConnectOptions>()?.options([
        ("tcp_keepalives_idle", idle.to_string()),
        ("tcp_keepalives_interval", interval.to_string()),
        ("tcp_keepalives_count", count.to_string()),
        ("statement_timeout", "5000".to_owned()),
    ]))
}

/// Campaigns for the PostgreSQL leader lock until `shutdown` turns true,
/// publishing leadership on `tx` and the fence of the current term in
/// `fence`. Never returns an error: connection failures mean "not leader"
/// and are retried.
pub async fn pg_campaign(
    url: String,
    tx: watch::Sender<bool>,
    fence: softstake_store::FenceSlot,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conn: Option<sqlx::PgConnection> = None;
    let mut logged_standby = false;
    let holder = format!(
        "{}:{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "softstake".into()),
        std::process::id()
    );
    let step_down = |why: &str| {
        fence.set(None);
        tx.send_replace(false);
        tracing::error!(reason = why, "leader lock lost: stepping down");
    };
    loop {
        if *shutdown.borrow() {
            break;
        }
        let leader = *tx.borrow();
        match conn.as_mut() {
            None => {
                let connected = match lock_options(&url) {
                    Ok(o) => tokio::time::timeout(
                        CHECK_TIMEOUT * 5,
                        sqlx::PgConnection::connect_with(&o),
                    )
                    .await
                    .unwrap_or_else(|_| Err(sqlx::Error::PoolTimedOut)),
                    Err(e) => Err(e),
                };
                match connected {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        tracing::warn!(error = %e, "leader election: cannot connect; retrying");
                    }
                }
            }
            Some(c) if leader => {
                // Still alive, and answering in time? If not, step down.
                match tokio::time::timeout(CHECK_TIMEOUT, sqlx::query("SELECT 1").execute(&mut *c))
                    .await
                {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        step_down(&e.to_string());
                        conn = None;
                    }
                    Err(_) => {
                        step_down("the lock connection did not answer in time");
                        conn = None;
                    }
                }
            }
            Some(c) => {
                let got = tokio::time::timeout(
                    CHECK_TIMEOUT * 5,
                    softstake_store::claim_leadership(c, &holder, softstake_core::Timestamp::now()),
                )
                .await;
                match got {
                    Ok(Ok(Some(f))) => {
                        tracing::info!(
                            term = f.term,
                            "leader lock acquired: this instance runs the chain loops"
                        );
                        fence.set(Some(f));
                        tx.send_replace(true);
                        logged_standby = false;
                    }
                    Ok(Ok(None)) => {
                        if !logged_standby {
                            tracing::info!(
                                "another instance is leader: standing by (read API only)"
                            );
                            logged_standby = true;
                        }
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "leader election query failed; reconnecting");
                        conn = None;
                    }
                    Err(_) => {
                        tracing::warn!("leader election query did not answer; reconnecting");
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
    fence.set(None);
    tx.send_replace(false);
    if let Some(mut c) = conn {
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(PG_LOCK_KEY)
            .execute(&mut c)
            .await;
        let _ = c.close().await;
    }
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
