//! Rewards the chain paid, with evidence.

use crate::{StoreError, on_pool, parse_amount};
use serde::{Deserialize, Serialize};
use softstake_core::adapter::RewardKind;
use softstake_core::{Amount, ChainId, Period, Timestamp};

/// A reward to record. `key` is unique per chain (the idempotency key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewReward {
    /// Chain that paid it.
    pub chain: ChainId,
    /// Idempotency key, unique per chain (e.g. `era:1234:validator`).
    pub key: String,
    /// Period it was earned in.
    pub period: Period,
    /// Gross amount.
    pub amount: Amount,
    /// Validator / pool / baker.
    pub validator: String,
    /// Kind.
    pub kind: RewardKind,
    /// Transaction hash, if any.
    pub tx_hash: Option<String>,
    /// Epoch / era / cycle, if any.
    pub epoch: Option<u64>,
}

/// A stored reward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RewardRecord {
    /// Row id.
    pub id: i64,
    /// The reward.
    #[serde(flatten)]
    pub reward: NewReward,
    /// Asset ticker.
    pub asset: String,
    /// When recorded.
    pub recorded_at: Timestamp,
    /// Distribution id, once distributed.
    pub distribution_id: Option<i64>,
    /// When it was voided (never distributed then), if it was.
    pub voided_at: Option<Timestamp>,
    /// Why it was voided.
    pub void_reason: Option<String>,
}

/// Outcome of [`crate::Store::record_reward`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Recorded {
    /// Row id.
    pub id: i64,
    /// False when the same reward was already recorded (a no-op).
    pub created: bool,
}

type RewardRow = (
    i64,
    String,
    String,
    String,
    i64,
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<i64>,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

const SELECT_REWARD: &str = "SELECT r.id, r.chain, r.reward_key, r.asset, r.period_start, r.period_end, r.amount, \
     r.validator, r.kind, r.tx_hash, r.epoch, r.recorded_at, d.id, r.voided_at, r.void_reason \
     FROM rewards r LEFT JOIN distributions d ON d.reward_id = r.id";

fn parse_kind(s: &str) -> Result<RewardKind, StoreError> {
    Ok(match s {
        "consensus" => RewardKind::Consensus,
        "execution" => RewardKind::Execution,
        "delegation_payout" => RewardKind::DelegationPayout,
        "manual" => RewardKind::Manual,
        "reconciled" => RewardKind::Reconciled,
        other => return Err(StoreError::Corrupt(format!("rewards.kind {other:?}"))),
    })
}

fn from_row(r: RewardRow) -> Result<RewardRecord, StoreError> {
    let (
        id,
        chain,
        key,
        asset,
        start,
        end,
        amount,
        validator,
        kind,
        tx_hash,
        epoch,
        at,
        dist,
        voided_at,
        void_reason,
    ) = r;
    let chain: ChainId = chain
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("rewards.chain: {e}")))?;
    let period = Period::new(Timestamp::from_unix(start), Timestamp::from_unix(end))
        .map_err(|e| StoreError::Corrupt(format!("rewards.period: {e}")))?;
    Ok(RewardRecord {
        id,
        reward: NewReward {
            chain,
            key,
            period,
            amount: parse_amount("rewards.amount", &amount)?,
            validator,
            kind: parse_kind(&kind)?,
            tx_hash,
            epoch: epoch.map(|e| u64::try_from(e).unwrap_or_default()),
        },
        asset,
        recorded_at: Timestamp::from_unix(at),
        distribution_id: dist,
        voided_at: voided_at.map(Timestamp::from_unix),
        void_reason,
    })
}

impl crate::Store {
    /// Records a reward. Recording the same `(chain, key)` again with the
    /// same content is a no-op (`created: false`); with different content it
    /// is refused.
    pub async fn record_reward(
        &self,
        r: &NewReward,
        now: Timestamp,
    ) -> Result<Recorded, StoreError> {
        if r.amount.is_zero() {
            return Err(StoreError::Invalid(
                "reward amount is 0: nothing to distribute".into(),
            ));
        }
        if r.key.trim().is_empty() || r.validator.trim().is_empty() {
            return Err(StoreError::Invalid(
                "reward key and validator must not be empty".into(),
            ));
        }
        not_from_the_future(r.period.end(), now)?;
        let epoch = r
            .epoch
            .map(i64::try_from)
            .transpose()
            .map_err(|_| StoreError::Invalid("epoch is too large".into()))?;
        let inserted: Option<i64> = on_pool!(self, pool => {
            let mut tx = crate::BeginWrite::begin_write(pool).await?;
            crate::fence::FenceCheck::check_fence(&mut tx, self.fence.as_ref()).await?;
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO rewards (chain, reward_key, asset, period_start, period_end, amount, validator, kind, tx_hash, epoch, recorded_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (chain, reward_key) DO NOTHING RETURNING id",
            )
            .bind(r.chain.as_str())
            .bind(&r.key)
            .bind(r.chain.asset())
            .bind(r.period.start().unix())
            .bind(r.period.end().unix())
            .bind(r.amount.to_string())
            .bind(&r.validator)
            .bind(r.kind.as_str())
            .bind(&r.tx_hash)
            .bind(epoch)
            .bind(now.unix())
            .fetch_optional(&mut *tx)
            .await?;
            tx.commit().await?;
            id
        });
        if let Some(id) = inserted {
            return Ok(Recorded { id, created: true });
        }
        let existing = self
            .reward_by_key(r.chain, &r.key)
            .await?
            .ok_or_else(|| StoreError::Corrupt("reward vanished after a key conflict".into()))?;
        if existing.reward != *r {
            return Err(StoreError::Invalid(format!(
                "reward key {:?} on {} was already recorded with different content (id {})",
                r.key, r.chain, existing.id
            )));
        }
        Ok(Recorded {
            id: existing.id,
            created: false,
        })
    }

    /// Voids a reward that was not distributed (a wrong manual entry): it
    /// stays, with when and why, and is never distributed. Voiding it again
    /// is a no-op; a distributed reward cannot be voided (book a correction
    /// instead).
    pub async fn void_reward(
        &self,
        id: i64,
        reason: &str,
        now: Timestamp,
    ) -> Result<RewardRecord, StoreError> {
        if reason.trim().is_empty() {
            return Err(StoreError::Invalid("say why the reward is voided".into()));
        }
        let r = self
            .reward(id)
            .await?
            .ok_or_else(|| StoreError::Invalid(format!("no reward with id {id}")))?;
        if r.voided_at.is_some() {
            return Ok(r);
        }
        on_pool!(self, pool => {
            let mut tx = crate::BeginWrite::begin_write(pool).await?;
            crate::fence::FenceCheck::check_fence(&mut tx, self.fence.as_ref()).await?;
            // Under the asset's distribution lock: no distribution of it
            // can be committing meanwhile.
            <Self as crate::AssetLock<_>>::lock(&mut tx, r.reward.chain).await?;
            let distributed: Option<i64> =
                sqlx::query_scalar("SELECT id FROM distributions WHERE reward_id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(d) = distributed {
                return Err(StoreError::Invalid(format!(
                    "reward {id} was distributed (distribution {d}): it cannot be voided; book a correction instead"
                )));
            }
            sqlx::query("UPDATE rewards SET voided_at = $1, void_reason = $2 WHERE id = $3 AND voided_at IS NULL")
                .bind(now.unix())
                .bind(reason)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        self.reward(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("reward vanished while voided".into()))
    }

    /// A reward by id.
    pub async fn reward(&self, id: i64) -> Result<Option<RewardRecord>, StoreError> {
        let sql = format!("{SELECT_REWARD} WHERE r.id = $1");
        let row: Option<RewardRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?
        });
        row.map(from_row).transpose()
    }

    async fn reward_by_key(
        &self,
        chain: ChainId,
        key: &str,
    ) -> Result<Option<RewardRecord>, StoreError> {
        let sql = format!("{SELECT_REWARD} WHERE r.chain = $1 AND r.reward_key = $2");
        let row: Option<RewardRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(chain.as_str()).bind(key).fetch_optional(pool).await?
        });
        row.map(from_row).transpose()
    }

    /// Rewards not yet distributed, oldest period first.
    pub async fn undistributed_rewards(
        &self,
        chain: Option<ChainId>,
    ) -> Result<Vec<RewardRecord>, StoreError> {
        let sql = format!(
            "{SELECT_REWARD} WHERE d.id IS NULL AND r.voided_at IS NULL AND ($1 = '' OR r.chain = $1) ORDER BY r.period_end, r.id"
        );
        let rows: Vec<RewardRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(chain.map_or("", ChainId::as_str))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(from_row).collect()
    }

    /// Rewards of a chain (all chains when `None`), newest first, with ids
    /// below `before` (all when `None`), at most `limit`.
    pub async fn list_rewards(
        &self,
        chain: Option<ChainId>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<RewardRecord>, StoreError> {
        let sql = format!(
            "{SELECT_REWARD} WHERE ($1 = '' OR r.chain = $1) AND r.id < $2 ORDER BY r.id DESC LIMIT $3"
        );
        let rows: Vec<RewardRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(chain.map_or("", ChainId::as_str))
                .bind(before.unwrap_or(i64::MAX))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(from_row).collect()
    }

    /// Totals of a chain's distributed rewards whose period ended in
    /// `[since, until)`: (gross, commission, users' pool).
    pub async fn reward_totals(
        &self,
        chain: ChainId,
        since: Timestamp,
        until: Timestamp,
    ) -> Result<(Amount, Amount, Amount), StoreError> {
        let rows: Vec<(String, String, String)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT d.gross, d.commission, d.users_pool FROM distributions d JOIN rewards r ON r.id = d.reward_id \
                 WHERE r.chain = $1 AND r.period_end >= $2 AND r.period_end < $3",
            )
            .bind(chain.as_str())
            .bind(since.unix())
            .bind(until.unix())
            .fetch_all(pool)
            .await?
        });
        let col = |i: usize| -> Vec<String> {
            rows.iter()
                .map(|r| match i {
                    0 => r.0.clone(),
                    1 => r.1.clone(),
                    _ => r.2.clone(),
                })
                .collect()
        };
        Ok((
            crate::sum_amounts("distributions.gross", &col(0))?,
            crate::sum_amounts("distributions.commission", &col(1))?,
            crate::sum_amounts("distributions.users_pool", &col(2))?,
        ))
    }
}

/// How far a reward's period may end after our clock: node clocks and ours
/// differ by a few seconds; more is a wrong entry or a node running ahead.
pub const FUTURE_TOLERANCE_SECS: i64 = 300;

/// Refuses a period that ends after `now` + [`FUTURE_TOLERANCE_SECS`]:
/// recorded or distributed, it would move the distributed horizon past the
/// present and every later balance update would be refused.
pub(crate) fn not_from_the_future(end: Timestamp, now: Timestamp) -> Result<(), StoreError> {
    if end.unix() > now.unix().saturating_add(FUTURE_TOLERANCE_SECS) {
        return Err(StoreError::FutureReward {
            end,
            now,
            tolerance_secs: FUTURE_TOLERANCE_SECS,
        });
    }
    Ok(())
}
