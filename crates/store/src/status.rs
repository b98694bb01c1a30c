//! A summary of what the store holds, for `softstake status`.

use crate::{StoreError, on_pool};
use serde::Serialize;

/// Per-chain control state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainStatus {
    /// Chain name.
    pub chain: String,
    /// Paused by an operator.
    pub paused: bool,
    /// Unix seconds of the last successful cycle.
    pub last_cycle_at: Option<i64>,
}

/// Counts of what the store holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreStatus {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// Applied schema version.
    pub schema_version: i64,
    /// Schema version this binary carries.
    pub binary_schema_version: i64,
    /// Stored balance updates.
    pub balance_updates: i64,
    /// Distinct (user, asset) pairs.
    pub accounts: i64,
    /// Recorded rewards.
    pub rewards: i64,
    /// Distributions.
    pub distributions: i64,
    /// Published credits (amount above 0) not yet acknowledged by the
    /// exchange; zero-amount rows are never published, so never counted.
    pub credits_unacked: i64,
    /// Withdrawal requests waiting in the queue.
    pub withdrawals_queued: i64,
    /// Operations not in a final state.
    pub operations_open: i64,
    /// Per-chain state.
    pub chains: Vec<ChainStatus>,
}

impl crate::Store {
    /// Reads the summary. Requires the schema to be current.
    pub async fn status(&self) -> Result<StoreStatus, StoreError> {
        self.require_current_schema().await?;
        let schema_version = self.schema_version().await?;
        let counts: (i64, i64, i64, i64, i64, i64, i64) = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT
                    (SELECT COUNT(*) FROM balance_updates),
                    (SELECT COUNT(*) FROM (SELECT DISTINCT user_id, asset FROM balance_updates) a),
                    (SELECT COUNT(*) FROM rewards),
                    (SELECT COUNT(*) FROM distributions),
                    (SELECT COUNT(*) FROM credits WHERE acked_at IS NULL AND amount <> '0'),
                    (SELECT COUNT(*) FROM withdrawals WHERE status = 'queued'),
                    (SELECT COUNT(*) FROM operations WHERE state NOT IN ('confirmed', 'failed', 'expired'))",
            )
            .fetch_one(pool)
            .await?
        });
        let chains: Vec<(String, bool, Option<i64>)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT chain, paused, last_cycle_at FROM chain_state ORDER BY chain")
                .fetch_all(pool)
                .await?
        });
        Ok(StoreStatus {
            backend: match self.backend() {
                crate::Backend::Sqlite => "sqlite",
                crate::Backend::Postgres => "postgres",
            },
            schema_version,
            binary_schema_version: self.binary_schema_version(),
            balance_updates: counts.0,
            accounts: counts.1,
            rewards: counts.2,
            distributions: counts.3,
            credits_unacked: counts.4,
            withdrawals_queued: counts.5,
            operations_open: counts.6,
            chains: chains
                .into_iter()
                .map(|(chain, paused, last_cycle_at)| ChainStatus {
                    chain,
                    paused,
                    last_cycle_at,
                })
                .collect(),
        })
    }
}

impl crate::Store {
    /// Pauses or resumes a chain's loop (operators). Idempotent.
    pub async fn set_paused(
        &self,
        chain: softstake_core::ChainId,
        paused: bool,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO chain_state (chain, paused) VALUES ($1, $2) \
                 ON CONFLICT (chain) DO UPDATE SET paused = excluded.paused",
            )
            .bind(chain.as_str())
            .bind(paused)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Whether a chain is paused.
    pub async fn is_paused(&self, chain: softstake_core::ChainId) -> Result<bool, StoreError> {
        let v: Option<bool> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT paused FROM chain_state WHERE chain = $1")
                .bind(chain.as_str())
                .fetch_optional(pool)
                .await?
        });
        Ok(v.unwrap_or(false))
    }

    /// The adapter's reward cursor for a chain (`None`: from the start).
    pub async fn reward_cursor(
        &self,
        chain: softstake_core::ChainId,
    ) -> Result<Option<String>, StoreError> {
        let v: Option<Option<String>> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT reward_cursor FROM chain_state WHERE chain = $1")
                .bind(chain.as_str())
                .fetch_optional(pool)
                .await?
        });
        Ok(v.flatten())
    }

    /// Stores the reward cursor after the rewards before it were recorded
    /// (recording is idempotent, so a crash in between only replays).
    pub async fn set_reward_cursor(
        &self,
        chain: softstake_core::ChainId,
        cursor: Option<&str>,
        now: softstake_core::Timestamp,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = crate::BeginWrite::begin_write(pool).await?;
            crate::fence::FenceCheck::check_fence(&mut tx, self.fence.as_ref()).await?;
            sqlx::query(
                "INSERT INTO chain_state (chain, reward_cursor, last_cycle_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (chain) DO UPDATE SET reward_cursor = excluded.reward_cursor, last_cycle_at = excluded.last_cycle_at",
            )
            .bind(chain.as_str())
            .bind(cursor)
            .bind(now.unix())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }
}
