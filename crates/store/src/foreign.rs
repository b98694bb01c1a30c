//! Rewards paid in another denomination than the chain's coin (schema v10).
//!
//! The Cosmos Hub's distribution module pays ATOM delegators whatever the
//! fee pool and consumer chains gave it, IBC denominations included, in the
//! same `withdraw_rewards` event as the uatom. Those coins land in the
//! custody account but are not the pool's coin: distributing them as uatom
//! would be wrong, and dropping them would hide value the pool received.
//! Each is kept once per key; the treasury sees the totals per
//! denomination (`softstake books foreign`, metrics) and disposes of them:
//! coins converted to the pool's coin come back as a transfer, which an
//! operator declares or classifies as income, and are distributed then.

use crate::StoreError;
use crate::on_pool;
use softstake_core::adapter::ForeignReward;
use softstake_core::{ChainId, Timestamp};

/// What a chain has received in one foreign denomination.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ForeignTotal {
    /// The denomination.
    pub denom: String,
    /// Base units of it, in total.
    #[serde(with = "u128_string")]
    pub amount: u128,
    /// How many payments.
    pub payments: u64,
    /// The latest payment's time.
    pub last_paid_at: Timestamp,
}

mod u128_string {
    pub fn serialize<S: serde::Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }
}

type Row = (String, String, i64);

impl crate::Store {
    /// Keeps a foreign reward once per key; `true` when it is new. The same
    /// key with other content is refused.
    pub async fn record_foreign_reward(
        &self,
        chain: ChainId,
        r: &ForeignReward,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        if r.amount == 0 {
            return Err(StoreError::Invalid("foreign reward amount is 0".into()));
        }
        if r.key.trim().is_empty() || r.denom.trim().is_empty() || r.validator.trim().is_empty() {
            return Err(StoreError::Invalid(
                "foreign reward key, denomination and validator must not be empty".into(),
            ));
        }
        let inserted: Option<i64> = on_pool!(self, pool => {
            let mut tx = crate::BeginWrite::begin_write(pool).await?;
            crate::fence::FenceCheck::check_fence(&mut tx, self.fence.as_ref()).await?;
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO foreign_rewards (chain, reward_key, denom, amount, validator, tx_hash, paid_at, recorded_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (chain, reward_key) DO NOTHING RETURNING id",
            )
            .bind(chain.as_str())
            .bind(&r.key)
            .bind(&r.denom)
            .bind(r.amount.to_string())
            .bind(&r.validator)
            .bind(&r.tx_hash)
            .bind(r.paid_at.unix())
            .bind(now.unix())
            .fetch_optional(&mut *tx)
            .await?;
            tx.commit().await?;
            id
        });
        if inserted.is_some() {
            return Ok(true);
        }
        let existing: Option<(String, String, String, Option<String>, i64)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT denom, amount, validator, tx_hash, paid_at FROM foreign_rewards WHERE chain = $1 AND reward_key = $2",
            )
            .bind(chain.as_str())
            .bind(&r.key)
            .fetch_optional(pool)
            .await?
        });
        let same = existing.is_some_and(|(denom, amount, validator, tx_hash, paid_at)| {
            denom == r.denom
                && amount == r.amount.to_string()
                && validator == r.validator
                && tx_hash == r.tx_hash
                && paid_at == r.paid_at.unix()
        });
        if !same {
            return Err(StoreError::Invalid(format!(
                "foreign reward key {:?} on {chain} was already recorded with different content",
                r.key
            )));
        }
        Ok(false)
    }

    /// What the chain has received per foreign denomination, by name.
    pub async fn foreign_totals(&self, chain: ChainId) -> Result<Vec<ForeignTotal>, StoreError> {
        let rows: Vec<Row> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT denom, amount, paid_at FROM foreign_rewards WHERE chain = $1 ORDER BY denom, id",
            )
            .bind(chain.as_str())
            .fetch_all(pool)
            .await?
        });
        let mut out: Vec<ForeignTotal> = Vec::new();
        for (denom, amount, paid_at) in rows {
            let amount: u128 = amount
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("foreign reward amount {amount:?}")))?;
            let paid_at = Timestamp::from_unix(paid_at);
            match out.last_mut() {
                Some(t) if t.denom == denom => {
                    t.amount = t.amount.checked_add(amount).ok_or_else(|| {
                        StoreError::Corrupt(format!("{denom} received overflows u128"))
                    })?;
                    t.payments += 1;
                    t.last_paid_at = t.last_paid_at.max(paid_at);
                }
                _ => out.push(ForeignTotal {
                    denom,
                    amount,
                    payments: 1,
                    last_paid_at: paid_at,
                }),
            }
        }
        Ok(out)
    }
}
