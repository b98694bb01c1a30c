//! Liquid balance updates from the exchange.
//!
//! Rule for late (out-of-order) updates, documented in ARCHITECTURE.md: an
//! update is stored with its own `effective_at` and balances are always
//! read in `effective_at` order (ties: the one received later wins), so a
//! late update is applied in time order. The one exception: an update that
//! takes effect before the end of a period already distributed for that
//! asset would change a committed distribution, so it is refused and the
//! whole batch with it.

use crate::{StoreError, on_pool, parse_amount};
use serde::{Deserialize, Serialize};
use softstake_core::{Amount, Timestamp};
use std::collections::{HashMap, HashSet};

/// Most updates accepted in one batch (API call).
pub const MAX_BATCH: usize = 10_000;

/// Most updates accepted from one file (`softstake balances import`).
pub const MAX_FILE: usize = 2_000_000;

/// Rows per SQLite statement. sqlx-sqlite binds `?` placeholders in linear
/// time (`$N` ones are quadratic), and 500 rows x 6 is under its limit.
const SQLITE_CHUNK: usize = 500;

type StoredRow = (String, String, String, String, i64);

/// Backend-specific bulk paths: `?` chunks on SQLite, arrays on PostgreSQL.
pub(crate) trait BulkBalances<DB: sqlx::Database> {
    async fn existing(
        tx: &mut sqlx::Transaction<'_, DB>,
        ids: &[String],
    ) -> Result<Vec<StoredRow>, StoreError>;
    /// Inserts, skipping ids already stored; returns the ids inserted.
    async fn insert(
        tx: &mut sqlx::Transaction<'_, DB>,
        rows: &[&BalanceUpdate],
        received_at: Timestamp,
    ) -> Result<Vec<String>, StoreError>;
}

impl BulkBalances<sqlx::Sqlite> for crate::Store {
    async fn existing(
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        ids: &[String],
    ) -> Result<Vec<StoredRow>, StoreError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(SQLITE_CHUNK) {
            let sql = format!(
                "SELECT event_id, user_id, asset, balance, effective_at FROM balance_updates WHERE event_id IN ({})",
                vec!["?"; chunk.len()].join(",")
            );
            // Only placeholders are interpolated; values are bound.
            let mut q = sqlx::query_as::<_, StoredRow>(sqlx::AssertSqlSafe(sql)).persistent(false);
            for id in chunk {
                q = q.bind(id);
            }
            out.extend(q.fetch_all(&mut **tx).await?);
        }
        Ok(out)
    }

    async fn insert(
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        rows: &[&BalanceUpdate],
        received_at: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(SQLITE_CHUNK) {
            let sql = format!(
                "INSERT INTO balance_updates (event_id, user_id, asset, balance, effective_at, received_at) VALUES {} \
                 ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                vec!["(?,?,?,?,?,?)"; chunk.len()].join(",")
            );
            // Only placeholders are interpolated; values are bound.
            let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).persistent(false);
            for u in chunk {
                q = q
                    .bind(&u.event_id)
                    .bind(&u.user_id)
                    .bind(&u.asset)
                    .bind(u.balance.to_string())
                    .bind(u.effective_at.unix())
                    .bind(received_at.unix());
            }
            ids.extend(q.fetch_all(&mut **tx).await?);
        }
        Ok(ids)
    }
}

impl BulkBalances<sqlx::Postgres> for crate::Store {
    async fn existing(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        ids: &[String],
    ) -> Result<Vec<StoredRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT event_id, user_id, asset, balance, effective_at FROM balance_updates WHERE event_id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&mut **tx)
        .await?)
    }

    async fn insert(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        rows: &[&BalanceUpdate],
        received_at: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        let ev: Vec<&str> = rows.iter().map(|u| u.event_id.as_str()).collect();
        let us: Vec<&str> = rows.iter().map(|u| u.user_id.as_str()).collect();
        let as_: Vec<&str> = rows.iter().map(|u| u.asset.as_str()).collect();
        let bal: Vec<String> = rows.iter().map(|u| u.balance.to_string()).collect();
        let at: Vec<i64> = rows.iter().map(|u| u.effective_at.unix()).collect();
        Ok(sqlx::query_scalar(
            "INSERT INTO balance_updates (event_id, user_id, asset, balance, effective_at, received_at) \
             SELECT e, u, a, b, t, $6 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[]) AS x(e, u, a, b, t) \
             ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
        )
        .bind(&ev)
        .bind(&us)
        .bind(&as_)
        .bind(&bal)
        .bind(&at)
        .bind(received_at.unix())
        .fetch_all(&mut **tx)
        .await?)
    }
}

/// One liquid balance update: `user_id` holds `balance` of `asset` from
/// `effective_at` on. `event_id` is the idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceUpdate {
    /// Unique id from the exchange.
    pub event_id: String,
    /// The exchange's user id.
    pub user_id: String,
    /// Asset ticker (`ETH`).
    pub asset: String,
    /// New absolute liquid balance in base units.
    pub balance: Amount,
    /// When it took effect.
    pub effective_at: Timestamp,
}

/// Outcome of an ingest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestReport {
    /// Newly stored updates.
    pub inserted: u64,
    /// Event ids already stored with identical content (no-ops).
    pub duplicates: u64,
    /// The duplicate event ids, in batch order.
    pub duplicate_ids: Vec<String>,
}

impl crate::Store {
    /// Stores a batch atomically: either every new update is stored, or
    /// (on any error) nothing is. A replayed event id with identical content
    /// is reported as a duplicate; with different content the batch is
    /// refused, naming the row (1-based).
    pub async fn ingest_balance_updates(
        &self,
        batch: &[BalanceUpdate],
        received_at: Timestamp,
    ) -> Result<IngestReport, StoreError> {
        self.ingest_with_limit(batch, received_at, MAX_BATCH).await
    }

    /// [`Self::ingest_balance_updates`] for an operator's file: one
    /// transaction of up to [`MAX_FILE`] updates, so a bad file stores nothing.
    pub async fn ingest_balance_file(
        &self,
        batch: &[BalanceUpdate],
        received_at: Timestamp,
    ) -> Result<IngestReport, StoreError> {
        self.ingest_with_limit(batch, received_at, MAX_FILE).await
    }

    async fn ingest_with_limit(
        &self,
        batch: &[BalanceUpdate],
        received_at: Timestamp,
        limit: usize,
    ) -> Result<IngestReport, StoreError> {
        if batch.len() > limit {
            return Err(StoreError::Invalid(format!(
                "batch has {} updates; at most {limit} per call",
                batch.len()
            )));
        }
        for (i, u) in batch.iter().enumerate() {
            if let Some(chain) = softstake_core::ChainId::from_asset(&u.asset) {
                let max = Amount::from_base(chain.max_balance());
                if u.balance > max {
                    return Err(StoreError::Invalid(format!(
                        "row {}: balance {} {} is above the most one user can hold ({} base units, an order of magnitude above the asset's supply)",
                        i + 1,
                        u.balance,
                        u.asset,
                        max
                    )));
                }
            }
        }
        let mut seen: HashMap<&str, usize> = HashMap::with_capacity(batch.len());
        for (i, u) in batch.iter().enumerate() {
            let first = *seen.entry(u.event_id.as_str()).or_insert(i);
            if batch[first] != *u {
                return Err(StoreError::Invalid(format!(
                    "row {}: event_id {:?} appears twice in the batch with different content (first at row {})",
                    i + 1,
                    u.event_id,
                    first + 1
                )));
            }
        }
        // First occurrence of each event id in the batch; later identical
        // ones are duplicates (different ones were refused above).
        let mut first_rows: Vec<(usize, &BalanceUpdate)> = Vec::with_capacity(batch.len());
        let mut in_batch_dup = vec![false; batch.len()];
        for (i, u) in batch.iter().enumerate() {
            if seen.get(u.event_id.as_str()) == Some(&i) {
                first_rows.push((i, u));
            } else {
                in_batch_dup[i] = true;
            }
        }
        let mut assets: Vec<&str> = first_rows.iter().map(|(_, u)| u.asset.as_str()).collect();
        assets.sort_unstable();
        assets.dedup();
        on_pool!(self, pool => {
            let mut tx = crate::BeginWrite::begin_write(pool).await?;
            crate::fence::FenceCheck::check_fence(&mut tx, self.fence.as_ref()).await?;
            // No distribution of these assets may commit between reading
            // the horizon and committing the updates (an update would land
            // in a period just distributed without it). SQLite: the write
            // lock taken above. PostgreSQL: the asset locks, shared, so
            // ingests still run side by side.
            <Self as crate::AssetLock<_>>::share(&mut tx, &assets).await?;
            // The distributed horizon per asset: an update before it may
            // only be a replay of one already stored.
            let horizons: Vec<(String, Option<i64>)> = sqlx::query_as(
                "SELECT d.asset, MAX(r.period_end) FROM distributions d JOIN rewards r ON r.id = d.reward_id GROUP BY d.asset",
            )
            .fetch_all(&mut *tx)
            .await?;
            let horizon: HashMap<String, i64> = horizons
                .into_iter()
                .filter_map(|(a, h)| h.map(|h| (a, h)))
                .collect();
            let early: Vec<(usize, &BalanceUpdate)> = first_rows
                .iter()
                .copied()
                .filter(|(_, u)| horizon.get(&u.asset).is_some_and(|h| u.effective_at.unix() < *h))
                .collect();
            let early_ids: Vec<String> = early.iter().map(|(_, u)| u.event_id.clone()).collect();
            let stored_early: HashSet<String> = <Self as BulkBalances<_>>::existing(&mut tx, &early_ids)
                .await?
                .into_iter()
                .map(|r| r.0)
                .collect();
            if let Some((i, u)) = early.iter().find(|(_, u)| !stored_early.contains(&u.event_id)) {
                return Err(StoreError::Invalid(format!(
                    "row {}: update takes effect at {} but {} rewards are already distributed up to {}; a correction before that must be booked as a new update at or after it",
                    i + 1,
                    u.effective_at,
                    u.asset,
                    Timestamp::from_unix(horizon.get(&u.asset).copied().unwrap_or_default())
                )));
            }
            let rows: Vec<&BalanceUpdate> = first_rows.iter().map(|(_, u)| *u).collect();
            let inserted: HashSet<String> =
                <Self as BulkBalances<_>>::insert(&mut tx, &rows, received_at).await?.into_iter().collect();
            // Ids that were already stored: identical content is a replay,
            // anything else a reused id (the transaction is rolled back).
            let conflicted: Vec<String> = rows
                .iter()
                .filter(|u| !inserted.contains(&u.event_id))
                .map(|u| u.event_id.clone())
                .collect();
            let mut stored: HashMap<String, StoredRow> = HashMap::with_capacity(conflicted.len());
            for r in <Self as BulkBalances<_>>::existing(&mut tx, &conflicted).await? {
                stored.insert(r.0.clone(), r);
            }
            let mut report = IngestReport::default();
            for (i, u) in batch.iter().enumerate() {
                if in_batch_dup[i] {
                    report.duplicates += 1;
                    report.duplicate_ids.push(u.event_id.clone());
                } else if let Some(old) = stored.get(&u.event_id) {
                    let same = old.1 == u.user_id
                        && old.2 == u.asset
                        && old.3 == u.balance.to_string()
                        && old.4 == u.effective_at.unix();
                    if !same {
                        return Err(StoreError::Invalid(format!(
                            "row {}: event_id {:?} was already stored with different content; event ids must not be reused",
                            i + 1,
                            u.event_id
                        )));
                    }
                    report.duplicates += 1;
                    report.duplicate_ids.push(u.event_id.clone());
                }
            }
            report.inserted = inserted.len() as u64;
            tx.commit().await?;
            Ok(report)
        })
    }

    /// A user's stored updates for an asset, in the order they apply.
    pub async fn balance_history(
        &self,
        user_id: &str,
        asset: &str,
    ) -> Result<Vec<BalanceUpdate>, StoreError> {
        let rows: Vec<(String, String, String, String, i64)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT event_id, user_id, asset, balance, effective_at FROM balance_updates WHERE user_id = $1 AND asset = $2 ORDER BY effective_at, id",
            )
            .bind(user_id)
            .bind(asset)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(event_id, user_id, asset, balance, at)| {
                Ok(BalanceUpdate {
                    event_id,
                    user_id,
                    asset,
                    balance: parse_amount("balance_updates.balance", &balance)?,
                    effective_at: Timestamp::from_unix(at),
                })
            })
            .collect()
    }

    /// Liabilities: the sum of every user's latest liquid balance of
    /// `asset` in effect at `at` (what the pool owes its users).
    pub async fn liabilities(&self, asset: &str, at: Timestamp) -> Result<Amount, StoreError> {
        let rows: Vec<String> = on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT b.balance FROM balance_updates b WHERE b.asset = $1 AND b.effective_at <= $2 \
                 AND NOT EXISTS (SELECT 1 FROM balance_updates c WHERE c.asset = b.asset AND c.user_id = b.user_id \
                 AND c.effective_at <= $2 AND (c.effective_at > b.effective_at OR (c.effective_at = b.effective_at AND c.id > b.id)))",
            )
            .bind(asset)
            .bind(at.unix())
            .fetch_all(pool)
            .await?
        });
        crate::sum_amounts("balance_updates.balance", &rows)
    }

    /// A user's liquid balance of `asset` in effect at `at` (0 if none).
    pub async fn balance_at(
        &self,
        user_id: &str,
        asset: &str,
        at: Timestamp,
    ) -> Result<Amount, StoreError> {
        let v: Option<String> = on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT balance FROM balance_updates WHERE user_id = $1 AND asset = $2 AND effective_at <= $3 \
                 ORDER BY effective_at DESC, id DESC LIMIT 1",
            )
            .bind(user_id)
            .bind(asset)
            .bind(at.unix())
            .fetch_optional(pool)
            .await?
        });
        v.map_or(Ok(Amount::ZERO), |b| {
            parse_amount("balance_updates.balance", &b)
        })
    }
}
