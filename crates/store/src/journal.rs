//! The on-chain operation journal.
//!
//! States: `awaiting_approval -> planned -> signed -> broadcast -> confirmed |
//! failed | expired` (and `planned -> failed` when signing is refused).
//! Every transition is a compare-and-set on the current state, so two
//! writers cannot both advance an operation, and the signed bytes and tx id
//! are written exactly once, before anything is broadcast: after a crash the
//! same bytes are rebroadcast, never re-signed with a new nonce.
//! [`recovery_action`] is the reconciliation rule applied at start-up.

use crate::{StoreError, on_pool, parse_amount};
use serde::Serialize;
use softstake_core::adapter::{OperationKind, TxStatus};
use softstake_core::{Amount, ChainId, Timestamp};

/// Where an operation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum OpState {
    /// Above the approval threshold; waits for `softstake approve`.
    AwaitingApproval,
    /// Ready to sign.
    Planned,
    /// Signed bytes and tx id journaled; maybe sent.
    Signed,
    /// Sent at least once.
    Broadcast,
    /// Included and successful.
    Confirmed,
    /// Included and failed, or refused before sending.
    Failed,
    /// Can never be included any more.
    Expired,
}

impl OpState {
    /// Database name.
    pub fn as_str(self) -> &'static str {
        match self {
            OpState::AwaitingApproval => "awaiting_approval",
            OpState::Planned => "planned",
            OpState::Signed => "signed",
            OpState::Broadcast => "broadcast",
            OpState::Confirmed => "confirmed",
            OpState::Failed => "failed",
            OpState::Expired => "expired",
        }
    }

    fn parse(s: &str) -> Result<OpState, StoreError> {
        Ok(match s {
            "awaiting_approval" => OpState::AwaitingApproval,
            "planned" => OpState::Planned,
            "signed" => OpState::Signed,
            "broadcast" => OpState::Broadcast,
            "confirmed" => OpState::Confirmed,
            "failed" => OpState::Failed,
            "expired" => OpState::Expired,
            other => return Err(StoreError::Corrupt(format!("operations.state {other:?}"))),
        })
    }

    /// Every state, in life-cycle order.
    pub const ALL: [OpState; 7] = [
        OpState::AwaitingApproval,
        OpState::Planned,
        OpState::Signed,
        OpState::Broadcast,
        OpState::Confirmed,
        OpState::Failed,
        OpState::Expired,
    ];

    /// Whether nothing more will happen to it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OpState::Confirmed | OpState::Failed | OpState::Expired
        )
    }
}

/// A journaled operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournalOp {
    /// Idempotency key.
    pub id: String,
    /// Chain.
    pub chain: ChainId,
    /// What it does.
    pub kind: OperationKind,
    /// Why the planner wanted it.
    pub reason: String,
    /// Value moved (for caps).
    pub value: Amount,
    /// State.
    pub state: OpState,
    /// Signed bytes, once signed (hex in JSON).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "hex_opt")]
    pub signed_bytes: Option<Vec<u8>>,
    /// Transaction id, once signed.
    pub tx_id: Option<String>,
    /// Expiry of the signed transaction.
    pub valid_until: Option<Timestamp>,
    /// Last error.
    pub error: Option<String>,
    /// Created.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

fn hex_opt<S: serde::Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(b) => s.collect_str(&b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
        None => s.serialize_none(),
    }
}

/// What to do with a non-final operation after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// Nothing was sent: sign it (for the first time) and go on.
    Sign,
    /// Found on chain and successful.
    Confirm,
    /// Found on chain and failed.
    Fail(String),
    /// Not found and can never be included: mark expired; the planner plans again.
    Expire,
    /// Not found but still valid: send the same journaled bytes again.
    Rebroadcast,
    /// Seen but not yet included: wait.
    Wait,
    /// Held by the node but priced out: sign a replacement under the same
    /// sequence at today's price.
    Replace(String),
    /// Waiting for an operator.
    AwaitApproval,
}

/// The reconciliation rule. `status` is the chain's answer for the
/// journaled tx id (`None` when there is no tx id yet), `head_time` the
/// chain's time at its head.
pub fn recovery_action(
    op: &JournalOp,
    status: Option<&TxStatus>,
    head_time: Timestamp,
) -> Recovery {
    match op.state {
        OpState::AwaitingApproval => Recovery::AwaitApproval,
        OpState::Planned => Recovery::Sign,
        OpState::Confirmed | OpState::Failed | OpState::Expired => Recovery::Wait,
        OpState::Signed | OpState::Broadcast => match status {
            Some(TxStatus::Confirmed { .. }) => Recovery::Confirm,
            Some(TxStatus::Failed { reason }) => Recovery::Fail(reason.clone()),
            Some(TxStatus::Pending) => Recovery::Wait,
            Some(TxStatus::Stuck { reason }) => Recovery::Replace(reason.clone()),
            Some(TxStatus::Expired) => Recovery::Expire,
            Some(TxStatus::NotFound) | None => match op.valid_until {
                Some(t) if head_time > t => Recovery::Expire,
                _ => Recovery::Rebroadcast,
            },
        },
    }
}

/// The journal state of a transaction found on chain: `confirmed` or
/// `failed` (with the chain's reason) when included, `broadcast` while
/// pending; one the chain does not hold is nothing to record.
fn found_state(tx_id: &str, status: &TxStatus) -> Result<(OpState, Option<String>), StoreError> {
    match status {
        TxStatus::Confirmed { .. } => Ok((OpState::Confirmed, None)),
        TxStatus::Failed { reason } => Ok((OpState::Failed, Some(reason.clone()))),
        TxStatus::Pending | TxStatus::Stuck { .. } => Ok((OpState::Broadcast, None)),
        TxStatus::NotFound | TxStatus::Expired => Err(StoreError::Invalid(format!(
            "transaction {tx_id:?} is not on chain: there is nothing to record"
        ))),
    }
}

/// An earlier signed version of an operation ([`crate::Store::journal_replace`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// Its transaction id.
    pub tx_id: String,
    /// Its signed bytes (hex in JSON).
    #[serde(serialize_with = "hex_vec")]
    pub signed_bytes: Vec<u8>,
    /// Its expiry, where the chain has one in time.
    pub valid_until: Option<Timestamp>,
    /// When it was replaced.
    pub replaced_at: Timestamp,
    /// Why.
    pub reason: String,
}

/// `operation_attempts` row: tx id, bytes, valid until, replaced at, reason.
type AttemptRow = (String, Vec<u8>, Option<i64>, i64, String);

fn hex_vec<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&v.iter().map(|x| format!("{x:02x}")).collect::<String>())
}

/// A new operation for the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOp {
    /// Idempotency key (deterministic from the plan, so replanning the
    /// same step does not add a second operation).
    pub id: String,
    /// Chain.
    pub chain: ChainId,
    /// What to do.
    pub kind: OperationKind,
    /// Why.
    pub reason: String,
    /// Start in `awaiting_approval`.
    pub needs_approval: bool,
}

#[derive(sqlx::FromRow)]
struct OpRow {
    id: String,
    chain: String,
    params: String,
    reason: String,
    value: String,
    state: String,
    signed_bytes: Option<Vec<u8>>,
    tx_id: Option<String>,
    valid_until: Option<i64>,
    error: Option<String>,
    created_at: i64,
    updated_at: i64,
}

const SELECT_OP: &str = "SELECT id, chain, params, reason, value, state, signed_bytes, tx_id, valid_until, error, created_at, updated_at FROM operations";

fn from_row(r: OpRow) -> Result<JournalOp, StoreError> {
    Ok(JournalOp {
        chain: r
            .chain
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("operations.chain: {e}")))?,
        kind: serde_json::from_str(&r.params)
            .map_err(|e| StoreError::Corrupt(format!("operations.params: {e}")))?,
        id: r.id,
        reason: r.reason,
        value: parse_amount("operations.value", &r.value)?,
        state: OpState::parse(&r.state)?,
        signed_bytes: r.signed_bytes,
        tx_id: r.tx_id,
        valid_until: r.valid_until.map(Timestamp::from_unix),
        error: r.error,
        created_at: Timestamp::from_unix(r.created_at),
        updated_at: Timestamp::from_unix(r.updated_at),
    })
}

impl crate::Store {
    /// Journals an operation. The same id with the same content is a no-op
    /// (`false`); with different content it is refused.
    pub async fn journal_insert(&self, op: &NewOp, now: Timestamp) -> Result<bool, StoreError> {
        let params = serde_json::to_string(&op.kind)
            .map_err(|e| StoreError::Invalid(format!("operation params: {e}")))?;
        let state = if op.needs_approval {
            OpState::AwaitingApproval
        } else {
            OpState::Planned
        };
        let n = on_pool!(self, pool => {
            let mut tx = crate::BeginWrite::begin_write(pool).await?;
            crate::fence::FenceCheck::check_fence(&mut tx, self.fence.as_ref()).await?;
            let n = sqlx::query(
                "INSERT INTO operations (id, chain, kind, params, reason, value, state, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&op.id)
            .bind(op.chain.as_str())
            .bind(op.kind.name())
            .bind(&params)
            .bind(&op.reason)
            .bind(op.kind.value_moved().to_string())
            .bind(state.as_str())
            .bind(now.unix())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            n
        });
        if n == 1 {
            return Ok(true);
        }
        let existing = self
            .journal_get(&op.id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("operation vanished after a key conflict".into()))?;
        if existing.chain != op.chain || existing.kind != op.kind {
            return Err(StoreError::Invalid(format!(
                "operation id {:?} is already journaled with different content",
                op.id
            )));
        }
        Ok(false)
    }

    /// Journals an operation the custody account sent that the journal did
    /// not know (found on chain after a database restore, with its tx id),
    /// in the state the chain shows: `confirmed` or `failed` when included,
    /// `broadcast` while pending (the reconciler follows it; it has no
    /// bytes to send again). Its id is `found:CHAIN:TX_ID`, so adopting it
    /// twice is a no-op (`false`). A tx id the journal already holds is
    /// refused: that operation is known.
    pub async fn journal_adopt(
        &self,
        chain: ChainId,
        tx_id: &str,
        kind: &OperationKind,
        status: &TxStatus,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let tx_id = tx_id.trim();
        if tx_id.is_empty() || tx_id.len() > 256 {
            return Err(StoreError::Invalid(
                "tx_id must be 1 to 256 characters".into(),
            ));
        }
        let (state, error) = found_state(tx_id, status)?;
        let params = serde_json::to_string(kind)
            .map_err(|e| StoreError::Invalid(format!("operation params: {e}")))?;
        let id = format!("found:{}:{tx_id}", chain.as_str());
        let n = on_pool!(self, pool => {
            let mut tx = crate::BeginWrite::begin_write(pool).await?;
            crate::fence::FenceCheck::check_fence(&mut tx, self.fence.as_ref()).await?;
            let other: i64 = sqlx::query_scalar(
                "SELECT (SELECT COUNT(*) FROM operations WHERE chain = $1 AND tx_id = $2 AND id <> $3) \
                 + (SELECT COUNT(*) FROM operation_attempts WHERE chain = $1 AND tx_id = $2)",
            )
            .bind(chain.as_str())
            .bind(tx_id)
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?;
            if other > 0 {
                return Err(StoreError::Invalid(format!(
                    "transaction {tx_id:?} is journaled already"
                )));
            }
            let n = sqlx::query(
                "INSERT INTO operations (id, chain, kind, params, reason, value, state, tx_id, error, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&id)
            .bind(chain.as_str())
            .bind(kind.name())
            .bind(&params)
            .bind("found on chain: sent by the custody account but not in the journal (a restored database?)")
            .bind(kind.value_moved().to_string())
            .bind(state.as_str())
            .bind(tx_id)
            .bind(error)
            .bind(now.unix())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            n
        });
        Ok(n == 1)
    }

    /// Completes a journaled operation that the chain shows was sent as
    /// `tx_id` although the journal never recorded it (a restored database
    /// that lost the signing): the chain's transaction, its state, and no
    /// bytes (what the journal may hold is not what landed). Only an open
    /// operation without that tx id changes (`false` otherwise).
    pub async fn journal_found(
        &self,
        id: &str,
        tx_id: &str,
        status: &TxStatus,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let (state, error) = found_state(tx_id, status)?;
        let n = on_pool!(self, pool => {
            let mut tx = crate::BeginWrite::begin_write(pool).await?;
            crate::fence::FenceCheck::check_fence(&mut tx, self.fence.as_ref()).await?;
            let n = sqlx::query(
                "UPDATE operations SET state = $1, tx_id = $2, signed_bytes = NULL, valid_until = NULL, \
                 error = COALESCE($3, 'found on chain as sent, though the journal never recorded the sending (a restored database?)'), updated_at = $4 \
                 WHERE id = $5 AND state IN ('awaiting_approval', 'planned', 'signed', 'broadcast') AND (tx_id IS NULL OR tx_id <> $2)",
            )
            .bind(state.as_str())
            .bind(tx_id)
            .bind(error)
            .bind(now.unix())
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            n
        });
        Ok(n == 1)
    }

    /// One operation.
    pub async fn journal_get(&self, id: &str) -> Result<Option<JournalOp>, StoreError> {
        let sql = format!("{SELECT_OP} WHERE id = $1");
        let r: Option<OpRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?
        });
        r.map(from_row).transpose()
    }

    /// Operations of a chain that are not final, oldest first.
    pub async fn journal_open(&self, chain: ChainId) -> Result<Vec<JournalOp>, StoreError> {
        let sql = format!(
            "{SELECT_OP} WHERE chain = $1 AND state NOT IN ('confirmed', 'failed', 'expired') ORDER BY created_at, id"
        );
        let rows: Vec<OpRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(chain.as_str()).fetch_all(pool).await?
        });
        rows.into_iter().map(from_row).collect()
    }

    /// Count of a chain's operations per state.
    pub async fn journal_state_counts(
        &self,
        chain: ChainId,
    ) -> Result<Vec<(OpState, i64)>, StoreError> {
        let rows: Vec<(String, i64)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT state, COUNT(*) FROM operations WHERE chain = $1 GROUP BY state ORDER BY state")
                .bind(chain.as_str())
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .map(|(s, n)| Ok((OpState::parse(&s)?, n)))
            .collect()
    }

    /// A chain's operations, newest first, created before `before` (all
    /// when `None`), at most `limit`.
    pub async fn journal_list(
        &self,
        chain: ChainId,
        before: Option<Timestamp>,
        limit: u32,
    ) -> Result<Vec<JournalOp>, StoreError> {
        let sql = format!(
            "{SELECT_OP} WHERE chain = $1 AND created_at < $2 ORDER BY created_at DESC, id DESC LIMIT $3"
        );
        let rows: Vec<OpRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(chain.as_str())
                .bind(before.map_or(i64::MAX, Timestamp::unix))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(from_row).collect()
    }

    /// Value of the chain's operations signed since `since` and not failed
    /// or expired (what counts against the daily cap).
    pub async fn journal_moved_since(
        &self,
        chain: ChainId,
        since: Timestamp,
    ) -> Result<Amount, StoreError> {
        let values: Vec<String> = on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT value FROM operations WHERE chain = $1 AND created_at >= $2 \
                 AND state IN ('signed', 'broadcast', 'confirmed')",
            )
            .bind(chain.as_str())
            .bind(since.unix())
            .fetch_all(pool)
            .await?
        });
        crate::sum_amounts("operations.value", &values)
    }

    /// `awaiting_approval -> planned`.
    pub async fn journal_approve(&self, id: &str, now: Timestamp) -> Result<(), StoreError> {
        self.transition(
            id,
            &[OpState::AwaitingApproval],
            OpState::Planned,
            None,
            now,
        )
        .await
    }

    /// `planned -> signed`, storing the bytes and tx id once.
    pub async fn journal_signed(
        &self,
        id: &str,
        bytes: &[u8],
        tx_id: &str,
        valid_until: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let n = on_pool!(self, pool => {
            let mut tx = crate::BeginWrite::begin_write(pool).await?;
            crate::fence::FenceCheck::check_fence(&mut tx, self.fence.as_ref()).await?;
            let n = sqlx::query(
                "UPDATE operations SET state = 'signed', signed_bytes = $1, tx_id = $2, valid_until = $3, updated_at = $4 \
                 WHERE id = $5 AND state = 'planned' AND signed_bytes IS NULL",
            )
            .bind(bytes)
            .bind(tx_id)
            .bind(valid_until.map(Timestamp::unix))
            .bind(now.unix())
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            n
        });
        self.check_transition(id, n, OpState::Signed).await
    }

    /// `signed -> broadcast`.
    pub async fn journal_broadcast(&self, id: &str, now: Timestamp) -> Result<(), StoreError> {
        self.transition(id, &[OpState::Signed], OpState::Broadcast, None, now)
            .await
    }

    /// `signed | broadcast -> confirmed | failed | expired`, or
    /// `planned -> failed` (refused before signing).
    pub async fn journal_finish(
        &self,
        id: &str,
        to: OpState,
        error: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let from: &[OpState] = match to {
            OpState::Confirmed | OpState::Expired => &[OpState::Signed, OpState::Broadcast],
            OpState::Failed => &[OpState::Planned, OpState::Signed, OpState::Broadcast],
            other => {
                return Err(StoreError::Invalid(format!(
                    "{} is not a final state",
                    other.as_str()
                )));
            }
        };
        self.transition(id, from, to, error, now).await
    }

    async fn transition(
        &self,
        id: &str,
        from: &[OpState],
        to: OpState,
        error: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let a = from.first().map_or("", |s| s.as_str());
        let b = from.get(1).map_or(a, |s| s.as_str());
        let c = from.get(2).map_or(a, |s| s.as_str());
        let n = on_pool!(self, pool => {
            let mut tx = crate::BeginWrite::begin_write(pool).await?;
            crate::fence::FenceCheck::check_fence(&mut tx, self.fence.as_ref()).await?;
            let n = sqlx::query(
                "UPDATE operations SET state = $1, error = COALESCE($2, error), updated_at = $3 \
                 WHERE id = $4 AND state IN ($5, $6, $7)",
            )
            .bind(to.as_str())
            .bind(error)
            .bind(now.unix())
            .bind(id)
            .bind(a)
            .bind(b)
            .bind(c)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            n
        });
        self.check_transition(id, n, to).await
    }

    /// `signed | broadcast -> signed` with new bytes: the operation's
    /// current version (`previous_tx_id`, compared and set) is kept in
    /// `operation_attempts` and the new one, signed by the adapter under
    /// the same account sequence or nonce so that at most one version can
    /// ever be included, becomes the one the journal sends. Both in one
    /// transaction: nothing signed is ever forgotten. `false` when the
    /// operation is no longer at `previous_tx_id` or no longer open (a
    /// concurrent reconcile moved it): nothing changed.
    #[allow(clippy::too_many_arguments)]
    pub async fn journal_replace(
        &self,
        id: &str,
        previous_tx_id: &str,
        bytes: &[u8],
        tx_id: &str,
        valid_until: Option<Timestamp>,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        if tx_id == previous_tx_id {
            return Err(StoreError::Invalid(format!(
                "operation {id:?}: a replacement must be another transaction than {tx_id}"
            )));
        }
        let n = on_pool!(self, pool => {
            let mut tx = crate::BeginWrite::begin_write(pool).await?;
            crate::fence::FenceCheck::check_fence(&mut tx, self.fence.as_ref()).await?;
            let kept = sqlx::query(
                "INSERT INTO operation_attempts (op_id, chain, tx_id, signed_bytes, valid_until, replaced_at, reason) \
                 SELECT id, chain, tx_id, signed_bytes, valid_until, $1, $2 FROM operations \
                 WHERE id = $3 AND tx_id = $4 AND signed_bytes IS NOT NULL AND state IN ('signed', 'broadcast')",
            )
            .bind(now.unix())
            .bind(reason)
            .bind(id)
            .bind(previous_tx_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if kept != 1 {
                0
            } else {
                let n = sqlx::query(
                    "UPDATE operations SET state = 'signed', signed_bytes = $1, tx_id = $2, valid_until = $3, error = $4, updated_at = $5 \
                     WHERE id = $6 AND tx_id = $7 AND state IN ('signed', 'broadcast')",
                )
                .bind(bytes)
                .bind(tx_id)
                .bind(valid_until.map(Timestamp::unix))
                .bind(reason)
                .bind(now.unix())
                .bind(id)
                .bind(previous_tx_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n != 1 {
                    return Err(StoreError::Corrupt(format!(
                        "operation {id:?}: its version was kept but not replaced"
                    )));
                }
                tx.commit().await?;
                n
            }
        });
        Ok(n == 1)
    }

    /// The versions an operation's current one replaced, oldest first.
    pub async fn journal_attempts(&self, id: &str) -> Result<Vec<Attempt>, StoreError> {
        let rows: Vec<AttemptRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT tx_id, signed_bytes, valid_until, replaced_at, reason FROM operation_attempts \
                 WHERE op_id = $1 ORDER BY replaced_at, tx_id",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(tx_id, signed_bytes, valid_until, replaced_at, reason)| Attempt {
                    tx_id,
                    signed_bytes,
                    valid_until: valid_until.map(Timestamp::from_unix),
                    replaced_at: Timestamp::from_unix(replaced_at),
                    reason,
                },
            )
            .collect())
    }

    /// An earlier version of an open operation is the one the chain
    /// included (`confirmed` or `failed`): it becomes the operation's
    /// transaction again (the version it replaced moves to the attempts,
    /// as it can never be included now that the sequence is used), in one
    /// transaction. `false` when the operation is no longer open.
    pub async fn journal_landed(
        &self,
        id: &str,
        tx_id: &str,
        status: &TxStatus,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let (state, error) = found_state(tx_id, status)?;
        let n = on_pool!(self, pool => {
            let mut tx = crate::BeginWrite::begin_write(pool).await?;
            crate::fence::FenceCheck::check_fence(&mut tx, self.fence.as_ref()).await?;
            let earlier: Option<(Vec<u8>, Option<i64>)> = sqlx::query_as(
                "SELECT signed_bytes, valid_until FROM operation_attempts WHERE op_id = $1 AND tx_id = $2",
            )
            .bind(id)
            .bind(tx_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((bytes, valid_until)) = earlier else {
                return Err(StoreError::Invalid(format!(
                    "transaction {tx_id:?} is not an earlier version of operation {id:?}"
                )));
            };
            let kept = sqlx::query(
                "INSERT INTO operation_attempts (op_id, chain, tx_id, signed_bytes, valid_until, replaced_at, reason) \
                 SELECT id, chain, tx_id, signed_bytes, valid_until, $1, $2 FROM operations \
                 WHERE id = $3 AND tx_id IS NOT NULL AND signed_bytes IS NOT NULL AND state IN ('signed', 'broadcast')",
            )
            .bind(now.unix())
            .bind(format!("never included: the chain included the earlier version {tx_id}"))
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if kept != 1 {
                0
            } else {
                sqlx::query("DELETE FROM operation_attempts WHERE op_id = $1 AND tx_id = $2")
                    .bind(id)
                    .bind(tx_id)
                    .execute(&mut *tx)
                    .await?;
                let n = sqlx::query(
                    "UPDATE operations SET state = $1, tx_id = $2, signed_bytes = $3, valid_until = $4, error = $5, updated_at = $6 \
                     WHERE id = $7 AND state IN ('signed', 'broadcast')",
                )
                .bind(state.as_str())
                .bind(tx_id)
                .bind(bytes)
                .bind(valid_until)
                .bind(error)
                .bind(now.unix())
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tx.commit().await?;
                n
            }
        });
        Ok(n == 1)
    }

    async fn check_transition(&self, id: &str, rows: u64, to: OpState) -> Result<(), StoreError> {
        if rows == 1 {
            return Ok(());
        }
        match self.journal_get(id).await? {
            None => Err(StoreError::Invalid(format!("no operation {id:?}"))),
            Some(op) => Err(StoreError::Invalid(format!(
                "operation {id:?} is {}; it cannot become {}",
                op.state.as_str(),
                to.as_str()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(state: OpState, valid_until: Option<i64>) -> JournalOp {
        JournalOp {
            id: "op".into(),
            chain: ChainId::Cosmos,
            kind: OperationKind::ClaimRewards { validators: vec![] },
            reason: String::new(),
            value: Amount::ZERO,
            state,
            signed_bytes: Some(vec![1]),
            tx_id: Some("tx".into()),
            valid_until: valid_until.map(Timestamp::from_unix),
            error: None,
            created_at: Timestamp::from_unix(0),
            updated_at: Timestamp::from_unix(0),
        }
    }

    #[test]
    fn the_recovery_rule() {
        let head = Timestamp::from_unix(100);
        let nf = TxStatus::NotFound;
        assert_eq!(
            recovery_action(&op(OpState::Planned, None), None, head),
            Recovery::Sign
        );
        assert_eq!(
            recovery_action(&op(OpState::AwaitingApproval, None), None, head),
            Recovery::AwaitApproval
        );
        for s in [OpState::Signed, OpState::Broadcast] {
            assert_eq!(
                recovery_action(
                    &op(s, Some(50)),
                    Some(&TxStatus::Confirmed { height: 7 }),
                    head
                ),
                Recovery::Confirm
            );
            assert_eq!(
                recovery_action(
                    &op(s, Some(50)),
                    Some(&TxStatus::Failed {
                        reason: "out of gas".into()
                    }),
                    head
                ),
                Recovery::Fail("out of gas".into())
            );
            // Not found: expired if past its validity, else the same bytes again.
            assert_eq!(
                recovery_action(&op(s, Some(50)), Some(&nf), head),
                Recovery::Expire
            );
            assert_eq!(
                recovery_action(&op(s, Some(150)), Some(&nf), head),
                Recovery::Rebroadcast
            );
            assert_eq!(
                recovery_action(&op(s, None), Some(&nf), head),
                Recovery::Rebroadcast
            );
            assert_eq!(
                recovery_action(&op(s, Some(150)), Some(&TxStatus::Pending), head),
                Recovery::Wait
            );
            // The chain proves it can never be included, whatever the clock says.
            assert_eq!(
                recovery_action(&op(s, None), Some(&TxStatus::Expired), head),
                Recovery::Expire
            );
        }
    }
}
