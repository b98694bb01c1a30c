//! Fencing: one leader or none, enforced by the database.
//!
//! On PostgreSQL several daemons share one database and the holder of a
//! session advisory lock leads. A leader can lose its lock without knowing
//! (the server ended the session behind a failover or a one-way partition),
//! so leadership is also a **term** in the `leadership` table, bumped by the
//! new holder in its lock session ([`claim_leadership`]). A store handed to
//! the chain loops carries a [`FenceSlot`]; each of its writes that acts on
//! a chain runs, in its own transaction and before anything else:
//!
//! 1. `SELECT term FROM leadership WHERE id = 1 FOR SHARE`: the term must be
//!    the one this daemon claimed. The row lock is held to commit, so a new
//!    leader's bump waits for every write of the old term in flight;
//! 2. the lock session (its backend pid) must still hold an advisory lock
//!    (`pg_locks`): once the server ended it, the old leader's writes fail
//!    even before a new leader has bumped the term.
//!
//! So a write of a deposed leader either committed before the new leader's
//! term began, or fails: the overlap in acting is zero by construction.
//! SQLite runs one daemon per file (a file lock), so its stores carry no
//! slot and are never fenced.

use crate::StoreError;
use sqlx::Connection;
use std::sync::{Arc, RwLock};

/// The advisory lock key ("softstak" as big-endian bytes).
pub const PG_LOCK_KEY: i64 = 0x736f_6674_7374_616b;

/// What a leader proves with each fenced write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence {
    /// The term this daemon claimed.
    pub term: i64,
    /// The backend pid of the session holding the advisory lock.
    pub lock_pid: i32,
    /// When that backend started (microseconds since the epoch): with the
    /// pid, it names the session even if the pid is reused.
    pub lock_started_us: i64,
}

/// The current fence of a daemon, shared between its leader campaign
/// (which sets it on acquisition and clears it on stepping down) and its
/// chain loops' store. Empty: not the leader, and fenced writes fail.
#[derive(Debug, Clone, Default)]
pub struct FenceSlot(Arc<RwLock<Option<Fence>>>);

impl FenceSlot {
    /// An empty slot.
    pub fn new() -> Self {
        FenceSlot::default()
    }

    /// Sets (on acquiring leadership) or clears (on stepping down).
    pub fn set(&self, f: Option<Fence>) {
        if let Ok(mut g) = self.0.write() {
            *g = f;
        }
    }

    /// The current fence.
    pub fn get(&self) -> Option<Fence> {
        self.0.read().ok().and_then(|g| *g)
    }
}

/// Tries the leader lock on `conn` (a dedicated session, outside any pool)
/// and, when this session gets it, starts a new term in the same session.
/// `Ok(None)`: another session leads.
pub async fn claim_leadership(
    conn: &mut sqlx::PgConnection,
    holder: &str,
    now: softstake_core::Timestamp,
) -> Result<Option<Fence>, StoreError> {
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(PG_LOCK_KEY)
        .fetch_one(&mut *conn)
        .await?;
    if !got {
        return Ok(None);
    }
    let (lock_pid, lock_started_us): (i32, i64) = sqlx::query_as(
        "SELECT pid, (extract(epoch FROM backend_start) * 1000000)::bigint FROM pg_stat_activity WHERE pid = pg_backend_pid()",
    )
    .fetch_one(&mut *conn)
    .await?;
    let mut tx = conn.begin().await?;
    let term: i64 = sqlx::query_scalar(
        "UPDATE leadership SET term = term + 1, holder = $1, acquired_at = $2 WHERE id = 1 RETURNING term",
    )
    .bind(holder)
    .bind(now.unix())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(Fence {
        term,
        lock_pid,
        lock_started_us,
    }))
}

/// The fence check inside a write transaction (see the module docs).
pub(crate) trait FenceCheck {
    /// Fails with [`StoreError::Fenced`] unless `slot` (when fencing is on)
    /// proves this daemon still leads.
    fn check_fence(
        &mut self,
        slot: Option<&FenceSlot>,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
}

impl FenceCheck for sqlx::Transaction<'static, sqlx::Sqlite> {
    async fn check_fence(&mut self, _slot: Option<&FenceSlot>) -> Result<(), StoreError> {
        // One daemon per SQLite file (the file lock): nothing to fence.
        Ok(())
    }
}

impl FenceCheck for sqlx::Transaction<'static, sqlx::Postgres> {
    async fn check_fence(&mut self, slot: Option<&FenceSlot>) -> Result<(), StoreError> {
        let Some(slot) = slot else {
            return Ok(());
        };
        let Some(f) = slot.get() else {
            return Err(StoreError::Fenced("this instance is not the leader".into()));
        };
        let term: i64 = sqlx::query_scalar("SELECT term FROM leadership WHERE id = 1 FOR SHARE")
            .fetch_one(&mut **self)
            .await?;
        if term != f.term {
            return Err(StoreError::Fenced(format!(
                "leadership term {} has begun; this instance led term {}",
                term, f.term
            )));
        }
        let held: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.pid = $1 \
             AND (extract(epoch FROM a.backend_start) * 1000000)::bigint = $2)",
        )
        .bind(f.lock_pid)
        .bind(f.lock_started_us)
        .fetch_one(&mut **self)
        .await?;
        if !held {
            return Err(StoreError::Fenced(format!(
                "the leader lock session (backend {}) no longer holds the lock",
                f.lock_pid
            )));
        }
        Ok(())
    }
}
