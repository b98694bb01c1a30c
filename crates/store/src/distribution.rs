//! Distributing one reward, in one transaction.
//!
//! Reads the asset's balance histories, the users' carried remainders
//! (carry_after of their latest credit, see carries.rs) and the pool dust
//! (of the latest distribution), then writes the credit rows in bulk
//! (PostgreSQL: COPY; SQLite: multi-row INSERTs) while the split makes them
//! line by line, checks conservation on the lines written, and commits. A
//! failed check rolls everything back: all or nothing.

use crate::carries::ReadCarries;
use crate::{StoreError, on_pool, parse_amount};
use futures_util::TryStreamExt;
use rust_decimal::Decimal;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use softstake_core::{Amount, Rate, Timestamp};
use softstake_ledger::U256;
use softstake_ledger::split::{
    CreditLine, Share, Split, SplitInput, Splitter, digest_lines, split,
};
use softstake_ledger::weights::{Point, weight};
use std::str::FromStr;

/// Rows per SQLite INSERT (6 `?` parameters each; see balances.rs).
const SQLITE_CHUNK: usize = 500;

/// Options for [`crate::Store::distribute`].
#[derive(Debug, Clone, Default)]
pub struct DistributeOptions {
    /// Per-asset eligibility minimum (time below it counts zero).
    pub min_balance: Amount,
    /// Test hook (feature `test-utils`, never in the binary): fail after
    /// writing the credits, before commit, to prove the transaction leaves
    /// nothing behind.
    #[cfg(feature = "test-utils")]
    pub fail_before_commit: bool,
}

impl DistributeOptions {
    /// Options with this eligibility minimum (the rest default).
    #[allow(clippy::needless_update)] // the test-utils feature adds a field
    pub fn with_min_balance(min_balance: Amount) -> Self {
        DistributeOptions {
            min_balance,
            ..DistributeOptions::default()
        }
    }
}

/// A stored distribution's totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DistributionSummary {
    /// Distribution id.
    pub id: i64,
    /// Reward id.
    pub reward_id: i64,
    /// Asset.
    pub asset: String,
    /// Gross reward.
    pub gross: Amount,
    /// Commission rate used.
    pub commission_rate: String,
    /// Eligibility minimum used (base units).
    pub min_balance: Amount,
    /// Commission.
    pub commission: Amount,
    /// Users' pool.
    pub users_pool: Amount,
    /// Sum of credits.
    pub credited: Amount,
    /// Credit rows written (users with weight).
    pub users_credited: i64,
    /// Sum of weights (base units x seconds).
    pub total_weight: String,
    /// Carried remainders before / after (micro-units, over credited users).
    pub carry_before: String,
    /// After.
    pub carry_after: String,
    /// Pool dust before / after (micro-units).
    pub dust_before: String,
    /// After.
    pub dust_after: String,
    /// SHA-256 of the credit rows.
    pub digest: String,
    /// When made.
    pub created_at: Timestamp,
}

/// Outcome of [`crate::Store::distribute`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum DistributeOutcome {
    /// Distributed now.
    Distributed(DistributionSummary),
    /// Was distributed before (a no-op).
    AlreadyDistributed(DistributionSummary),
}

/// Result of re-computing a stored distribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Distribution id.
    pub id: i64,
    /// Whether everything matched.
    pub ok: bool,
    /// Stored digest.
    pub stored_digest: String,
    /// Digest of the stored credit rows as read back.
    pub rows_digest: String,
    /// Digest recomputed from the balance history.
    pub recomputed_digest: String,
    /// Each mismatch found.
    pub mismatches: Vec<String>,
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: i64,
    reward_id: i64,
    asset: String,
    gross: String,
    commission_rate: String,
    min_balance: String,
    commission: String,
    users_pool: String,
    credited: String,
    users_credited: i64,
    total_weight: String,
    carry_before: String,
    carry_after: String,
    dust_before: String,
    dust_after: String,
    digest: String,
    created_at: i64,
}

const SELECT_DIST: &str = "SELECT id, reward_id, asset, gross, commission_rate, min_balance, commission, users_pool, credited, \
     users_credited, total_weight, carry_before, carry_after, dust_before, dust_after, digest, created_at FROM distributions";

fn summary(r: SummaryRow) -> Result<DistributionSummary, StoreError> {
    Ok(DistributionSummary {
        id: r.id,
        reward_id: r.reward_id,
        asset: r.asset,
        gross: parse_amount("distributions.gross", &r.gross)?,
        commission_rate: r.commission_rate,
        min_balance: parse_amount("distributions.min_balance", &r.min_balance)?,
        commission: parse_amount("distributions.commission", &r.commission)?,
        users_pool: parse_amount("distributions.users_pool", &r.users_pool)?,
        credited: parse_amount("distributions.credited", &r.credited)?,
        users_credited: r.users_credited,
        total_weight: r.total_weight,
        carry_before: r.carry_before,
        carry_after: r.carry_after,
        dust_before: r.dust_before,
        dust_after: r.dust_after,
        digest: r.digest,
        created_at: Timestamp::from_unix(r.created_at),
    })
}

fn u256(column: &str, s: &str) -> Result<U256, StoreError> {
    U256::from_str_radix(s, 10).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn carry(column: &str, s: &str) -> Result<u128, StoreError> {
    s.parse::<u128>()
        .map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

/// Weights of every user holding `asset` over `[start, end)`, computed from
/// each user's history in time order (ties: later row id wins).
///
/// PostgreSQL streams one row per update, in index order (see
/// [`refresh_history_stats`] for why the plan stays that). SQLite reads
/// pages of users, each page packed into one row (`group_concat`), because
/// sqlx-sqlite hands rows from its worker thread one at a time over a
/// channel, and the per-row wake-ups cost more than the query; the next page
/// is read while the last one is parsed. Both give the same points.
pub(crate) trait ReadWeights<C> {
    async fn weights(
        conn: &mut C,
        asset: &str,
        period: softstake_core::Period,
        min: Amount,
    ) -> Result<Vec<Share>, StoreError>;
}

/// Refreshes PostgreSQL's planner statistics of `balance_updates` when more
/// than a tenth of it changed since they were taken (or there are none).
///
/// Without them, right after a bulk ingest and before autovacuum's analyze
/// (up to a minute later, or never where autovacuum is off), the planner
/// thinks the table is tiny and reads the histories with a bitmap scan and a
/// sort spilled to disk: twice as slow at a million users as the ordered
/// index-only scan it picks once it knows the size. ANALYZE samples a fixed
/// number of rows (about 0.2 s at 3 million). SQLite plans from the index
/// alone and needs nothing.
async fn refresh_history_stats(pool: &sqlx::PgPool) -> Result<(), StoreError> {
    let stale: Option<bool> = sqlx::query_scalar(
        "SELECT n_mod_since_analyze > 1000 AND n_mod_since_analyze * 10 > n_live_tup \
         FROM pg_stat_user_tables WHERE relid = 'balance_updates'::regclass",
    )
    .fetch_optional(pool)
    .await?;
    if stale == Some(true) {
        tracing::debug!("analyzing balance_updates before reading histories");
        sqlx::query("ANALYZE balance_updates").execute(pool).await?;
    }
    Ok(())
}

impl ReadWeights<sqlx::PgConnection> for crate::Store {
    async fn weights(
        conn: &mut sqlx::PgConnection,
        asset: &str,
        period: softstake_core::Period,
        min: Amount,
    ) -> Result<Vec<Share>, StoreError> {
        let mut rows = sqlx::query_as::<_, (String, String, i64)>(
            "SELECT user_id, balance, effective_at FROM balance_updates \
             WHERE asset = $1 AND effective_at < $2 ORDER BY user_id, effective_at, id",
        )
        .bind(asset.to_owned())
        .bind(period.end().unix())
        .fetch(conn);
        let mut out = Vec::new();
        let mut user: Option<String> = None;
        let mut hist: Vec<Point> = Vec::new();
        while let Some((u, bal, at)) = rows.try_next().await? {
            if user.as_deref() != Some(u.as_str()) {
                if let Some(prev) = user.take() {
                    out.push(share(prev, weight(&hist, period, min)));
                }
                hist.clear();
                user = Some(u);
            }
            hist.push(Point {
                at: Timestamp::from_unix(at),
                balance: parse_amount("balance_updates.balance", &bal)?,
            });
        }
        if let Some(prev) = user {
            out.push(share(prev, weight(&hist, period, min)));
        }
        Ok(out)
    }
}

/// Users per SQLite page (one row, see [`ReadWeights`]).
const USERS_PER_PAGE: usize = 1_000;

impl ReadWeights<sqlx::SqliteConnection> for crate::Store {
    async fn weights(
        conn: &mut sqlx::SqliteConnection,
        asset: &str,
        period: softstake_core::Period,
        min: Amount,
    ) -> Result<Vec<Share>, StoreError> {
        // A page is up to USERS_PER_PAGE users after the previous page's
        // last user (keyset on the (asset, user_id, ...) index, so no page
        // re-reads or sorts what came before), packed into one row: each
        // user becomes `LEN:USER_ID` followed by `BALANCE AT,...`,
        // separated by ';'. The user id is length-prefixed (in characters),
        // so it may contain any separator; the history is digits, spaces and
        // commas only. The second column is the page's last user (BINARY
        // order, the order of the GROUP BY), where the next page starts.
        // No order is asked of SQLite within a user (ordered aggregates sort
        // every group): points are sorted by time here and users by bytes in
        // the split. The row id, which breaks ties between updates of the
        // same second, is left out (formatting it is a tenth of the query's
        // time): a user with two updates at the same second is read again
        // on their own, in (time, id) order. Only text is concatenated: SQL
        // does no arithmetic on money.
        let page = |after: &str| {
            format!(
                "SELECT group_concat(length(user_id) || ':' || user_id || hist, ';'), max(user_id) FROM ( \
                   SELECT user_id, group_concat(balance || ' ' || effective_at, ',') AS hist \
                   FROM balance_updates WHERE asset = ? {after} AND effective_at < ? \
                   GROUP BY user_id ORDER BY user_id LIMIT {USERS_PER_PAGE})"
            )
        };
        let first_sql = page("");
        let next_sql = page("AND user_id > ?");
        let end = period.end().unix();
        let mut out = Vec::new();
        let mut hist: Vec<Point> = Vec::new();
        let mut keyed: Vec<(i64, Amount)> = Vec::new();
        let mut tied: Vec<usize> = Vec::new();
        let mut current: Option<(Option<String>, Option<String>)> =
            sqlx::query_as(sqlx::AssertSqlSafe(first_sql.as_str()))
                .bind(asset)
                .bind(end)
                .fetch_optional(&mut *conn)
                .await?;
        while let Some((Some(packed), Some(last))) = current.take() {
            // SQLite's worker thread reads the next page while this one is
            // parsed here.
            let next = sqlx::query_as(sqlx::AssertSqlSafe(next_sql.as_str()))
                .bind(asset)
                .bind(last)
                .bind(end)
                .fetch_optional(&mut *conn);
            let parse = async {
                parse_page(
                    &packed, period, min, &mut hist, &mut keyed, &mut out, &mut tied,
                )
            };
            let (fetched, parsed) = tokio::join!(next, parse);
            parsed?;
            current = fetched?;
        }
        for i in tied {
            let Some(s) = out.get_mut(i) else { continue };
            let rows: Vec<(String, i64)> = sqlx::query_as(
                "SELECT balance, effective_at FROM balance_updates \
                 WHERE asset = ? AND user_id = ? AND effective_at < ? ORDER BY effective_at, id",
            )
            .bind(asset)
            .bind(s.user_id.as_str())
            .bind(end)
            .fetch_all(&mut *conn)
            .await?;
            hist.clear();
            for (bal, at) in rows {
                hist.push(Point {
                    at: Timestamp::from_unix(at),
                    balance: parse_amount("balance_updates.balance", &bal)?,
                });
            }
            s.weight = weight(&hist, period, min);
        }
        Ok(out)
    }
}

/// Parses one SQLite page (see [`ReadWeights`]) into shares, noting in
/// `tied` the users with two updates at the same second (their order needs
/// the row ids).
fn parse_page(
    page: &str,
    period: softstake_core::Period,
    min: Amount,
    hist: &mut Vec<Point>,
    keyed: &mut Vec<(i64, Amount)>,
    out: &mut Vec<Share>,
    tied: &mut Vec<usize>,
) -> Result<(), StoreError> {
    let bad = |v: &str| StoreError::Corrupt(format!("balance_updates history near {v:?}"));
    let mut rest = page;
    while !rest.is_empty() {
        let (len, after) = rest.split_once(':').ok_or_else(|| bad(rest))?;
        let len: usize = len.parse().map_err(|_| bad(rest))?;
        let cut = after
            .char_indices()
            .nth(len)
            .map_or(after.len(), |(i, _)| i);
        let (user, tail) = after.split_at(cut);
        let (packed, next) = tail.split_once(';').unwrap_or((tail, ""));
        keyed.clear();
        for item in packed.split(',') {
            let mut f = item.split(' ');
            let (Some(bal), Some(at), None) = (f.next(), f.next(), f.next()) else {
                return Err(bad(item));
            };
            let at: i64 = at.parse().map_err(|_| bad(item))?;
            keyed.push((at, parse_amount("balance_updates.balance", bal)?));
        }
        // Time order; never trust the scan order for updates of the same
        // second (see above).
        keyed.sort_unstable_by_key(|(at, _)| *at);
        if keyed.windows(2).any(|w| w[0].0 == w[1].0) {
            tied.push(out.len());
        }
        hist.clear();
        hist.extend(keyed.iter().map(|(at, balance)| Point {
            at: Timestamp::from_unix(*at),
            balance: *balance,
        }));
        out.push(share(user.to_owned(), weight(hist, period, min)));
        rest = next;
    }
    Ok(())
}

impl crate::Store {
    /// Distributes reward `reward_id` once. A second call returns the
    /// existing distribution. Refuses (and writes nothing) if conservation
    /// fails.
    pub async fn distribute(
        &self,
        reward_id: i64,
        rate: Rate,
        opts: &DistributeOptions,
        now: Timestamp,
    ) -> Result<DistributeOutcome, StoreError> {
        if let Some(d) = self.distribution_for_reward(reward_id).await? {
            return Ok(DistributeOutcome::AlreadyDistributed(d));
        }
        let reward = self
            .reward(reward_id)
            .await?
            .ok_or_else(|| StoreError::Invalid(format!("no reward with id {reward_id}")))?;
        if reward.voided_at.is_some() {
            return Err(StoreError::Invalid(format!(
                "reward {reward_id} was voided ({}): it is never distributed",
                reward.void_reason.as_deref().unwrap_or("")
            )));
        }
        crate::rewards::not_from_the_future(reward.reward.period.end(), now)?;
        let asset = reward.asset.clone();
        let (start, end) = (
            reward.reward.period.start().unix(),
            reward.reward.period.end().unix(),
        );
        if let Some(pool) = self.pg_pool() {
            refresh_history_stats(pool).await?;
        }
        let id = on_pool!(self, pool => {
            let mut tx = crate::BeginWrite::begin_write(pool).await?;
            crate::fence::FenceCheck::check_fence(&mut tx, self.fence.as_ref()).await?;
            // Serialize distributions of one asset: carries and dust are
            // read-modify-write.
            <Self as crate::AssetLock<_>>::lock(&mut tx, reward.reward.chain).await?;
            // Not voided meanwhile (voiding takes the same lock).
            let voided: Option<i64> = sqlx::query_scalar("SELECT voided_at FROM rewards WHERE id = $1")
                .bind(reward_id)
                .fetch_one(&mut *tx)
                .await?;
            if voided.is_some() {
                return Err(StoreError::Invalid(format!(
                    "reward {reward_id} was voided: it is never distributed"
                )));
            }
            // Re-check under the lock: exactly once.
            let done: Option<i64> = sqlx::query_scalar("SELECT id FROM distributions WHERE reward_id = $1")
                .bind(reward_id)
                .fetch_optional(&mut *tx)
                .await?;
            // A loss of the chain not yet allocated to users: its shares
            // must be netted from this credit, so wait for it.
            let pending: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pool_losses WHERE chain = $1 AND rule = 'users' AND allocated_at IS NULL",
            )
            .bind(reward.reward.chain.as_str())
            .fetch_one(&mut *tx)
            .await?;
            if done.is_none() && pending > 0 {
                return Err(StoreError::LossPending(format!(
                    "a loss of {} waits for its allocation to users: reward {reward_id} is distributed after it (the next snapshot allocates it)",
                    reward.reward.chain
                )));
            }
            if done.is_some() {
                tx.rollback().await?;
                None
            } else {
                let period = softstake_core::Period::new(Timestamp::from_unix(start), Timestamp::from_unix(end))
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let prev: Option<(i64, String)> = sqlx::query_as(
                    "SELECT id, dust_after FROM distributions WHERE asset = $1 ORDER BY id DESC LIMIT 1",
                )
                .bind(asset.clone())
                .fetch_optional(&mut *tx)
                .await?;
                // (Reading the histories on a second connection while this
                // one reads the carries was measured: no faster on two
                // cores, where the database threads and the parsing already
                // compete; see README, Benchmarks.)
                let t_read = std::time::Instant::now();
                let weights = <Self as ReadWeights<_>>::weights(&mut *tx, &asset, period, opts.min_balance).await?;
                let prev_rows = match &prev {
                    Some((p, _)) => Some(<Self as ReadCarries<_>>::prev_rows(&mut *tx, *p).await?),
                    None => None,
                };
                let read_ms = t_read.elapsed().as_millis();
                let t_carry = std::time::Instant::now();
                let mut shares = weighted(weights);
                let users: Vec<&str> = shares.iter().map(|s| s.user_id.as_str()).collect();
                let carries = crate::carries::carries::<_, Self>(
                    &mut *tx, &asset, prev_rows.as_deref(), i64::MAX, &users,
                ).await?;
                drop(users);
                set_carries(&mut shares, carries)?;
                let carry_ms = t_carry.elapsed().as_millis();
                // The split is made line by line as the credit rows are
                // written (the lines of the next chunk while the database
                // inserts this one); the totals it needs come first.
                let t_split = std::time::Instant::now();
                let splitter = start_split(&reward.reward.amount, rate, &shares, prev.map(|p| p.1))?;
                let split_ms = t_split.elapsed().as_millis();
                let users = shares.len();
                // Totals known only at the end (credited, carries after,
                // dust after, digest) are set below, before commit.
                let dist_id: i64 = sqlx::query_scalar(
                    "INSERT INTO distributions (reward_id, asset, gross, commission_rate, min_balance, commission, users_pool, credited, \
                     users_credited, total_weight, carry_before, carry_after, dust_before, dust_after, digest, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, '0', $8, $9, '0', '0', $10, '0', '', $11) RETURNING id",
                )
                .bind(reward_id)
                .bind(asset.clone())
                .bind(reward.reward.amount.to_string())
                .bind(rate.to_string())
                .bind(opts.min_balance.to_string())
                .bind(splitter.commission().to_string())
                .bind(splitter.users_pool().to_string())
                .bind(i64::try_from(users).unwrap_or(i64::MAX))
                .bind(splitter.total_weight().to_string())
                .bind(splitter.dust_before().to_string())
                .bind(now.unix())
                .fetch_one(&mut *tx)
                .await?;
                let t_write = std::time::Instant::now();
                let mut splitter = splitter;
                let (written, digest, lines) = self.write_credits(&mut tx, dist_id, &asset, &mut splitter, shares, now).await?;
                let write_ms = t_write.elapsed().as_millis();
                // Conservation, checked on the lines as written: if it
                // fails, the transaction is dropped and nothing is committed.
                let s = splitter.finish(lines).map_err(refused)?;
                sqlx::query(
                    "UPDATE distributions SET credited = $1, carry_before = $2, carry_after = $3, dust_after = $4, digest = $5 WHERE id = $6",
                )
                .bind(s.credited.to_string())
                .bind(s.carry_before_sum().to_string())
                .bind(s.carry_after_sum().to_string())
                .bind(s.dust_after.to_string())
                .bind(digest)
                .bind(dist_id)
                .execute(&mut *tx)
                .await?;
                // The users' open shares of the chain's losses, taken from
                // these credits (loss_rule.rs). The credit rows and their
                // digest stay gross.
                NetLosses::net(&mut tx, reward.reward.chain.as_str(), dist_id, end, &s.lines).await?;
                if written != s.lines.len() as u64 {
                    return Err(StoreError::Invalid(format!(
                        "wrote {written} credit rows for {} lines; rolled back",
                        s.lines.len()
                    )));
                }
                #[cfg(feature = "test-utils")]
                if opts.fail_before_commit {
                    return Err(StoreError::Invalid("injected failure before commit".into()));
                }
                let t_commit = std::time::Instant::now();
                tx.commit().await?;
                tracing::debug!(read_ms, carry_ms, split_ms, write_ms, commit_ms = t_commit.elapsed().as_millis(), users = s.lines.len(), "distribution phases");
                Some(dist_id)
            }
        });
        let d = self
            .distribution_for_reward(reward_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("distribution missing after commit".into()))?;
        Ok(match id {
            Some(_) => DistributeOutcome::Distributed(d),
            None => DistributeOutcome::AlreadyDistributed(d),
        })
    }

    /// The distribution of a reward, if any.
    pub async fn distribution_for_reward(
        &self,
        reward_id: i64,
    ) -> Result<Option<DistributionSummary>, StoreError> {
        let sql = format!("{SELECT_DIST} WHERE reward_id = $1");
        let r: Option<SummaryRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(reward_id).fetch_optional(pool).await?
        });
        r.map(summary).transpose()
    }

    /// Distributions of an asset (all assets when `None`), newest first,
    /// with ids below `before` (all when `None`), at most `limit`.
    pub async fn list_distributions(
        &self,
        asset: Option<&str>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<DistributionSummary>, StoreError> {
        let sql = format!(
            "{SELECT_DIST} WHERE ($1 = '' OR asset = $1) AND id < $2 ORDER BY id DESC LIMIT $3"
        );
        let rows: Vec<SummaryRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(asset.unwrap_or(""))
                .bind(before.unwrap_or(i64::MAX))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(summary).collect()
    }

    /// A distribution by id.
    pub async fn distribution(&self, id: i64) -> Result<Option<DistributionSummary>, StoreError> {
        let sql = format!("{SELECT_DIST} WHERE id = $1");
        let r: Option<SummaryRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?
        });
        r.map(summary).transpose()
    }

    /// Recomputes distribution `id` from the stored balance history, the
    /// carries before it and the stored rate, and compares totals and digests.
    pub async fn verify_distribution(&self, id: i64) -> Result<VerifyReport, StoreError> {
        let d = self
            .distribution(id)
            .await?
            .ok_or_else(|| StoreError::Invalid(format!("no distribution with id {id}")))?;
        let reward = self
            .reward(d.reward_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("distribution without reward".into()))?;
        let (start, end) = (
            reward.reward.period.start().unix(),
            reward.reward.period.end().unix(),
        );
        let rate = Decimal::from_str(&d.commission_rate)
            .ok()
            .and_then(|v| Rate::new(v).ok())
            .ok_or_else(|| StoreError::Corrupt("distributions.commission_rate".into()))?;
        if let Some(pool) = self.pg_pool() {
            refresh_history_stats(pool).await?;
        }
        let (shares, rows) = on_pool!(self, pool => {
            let period = softstake_core::Period::new(Timestamp::from_unix(start), Timestamp::from_unix(end))
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let mut conn = pool.acquire().await?;
            let w = weighted(<Self as ReadWeights<_>>::weights(&mut *conn, &d.asset, period, d.min_balance).await?);
            let prev: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM distributions WHERE asset = $1 AND id < $2 ORDER BY id DESC LIMIT 1",
            )
            .bind(d.asset.clone())
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
            let mut w = w;
            let users: Vec<&str> = w.iter().map(|s| s.user_id.as_str()).collect();
            let prev_rows = match prev {
                Some(p) => Some(<Self as ReadCarries<_>>::prev_rows(&mut *conn, p).await?),
                None => None,
            };
            let c = crate::carries::carries::<_, Self>(&mut *conn, &d.asset, prev_rows.as_deref(), id, &users).await?;
            drop(users);
            set_carries(&mut w, c)?;
            let r: Vec<(String, String, String, String)> = sqlx::query_as(
                "SELECT user_id, amount, weight, carry_after FROM credits WHERE distribution_id = $1",
            )
            .bind(id)
            .fetch_all(pool)
            .await?;
            (w, r)
        });
        let mut rows: Vec<(String, Amount, U256, u128)> = rows
            .into_iter()
            .map(|(u, a, w, c)| {
                Ok((
                    u,
                    parse_amount("credits.amount", &a)?,
                    u256("credits.weight", &w)?,
                    carry("credits.carry_after", &c)?,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        rows.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let rows_digest = digest_lines(rows.iter().map(|(u, a, w, c)| (u.as_str(), *a, *w, *c)));
        let mut mismatches = Vec::new();
        let s = make_split(&d.gross, rate, shares, Some(d.dust_before.clone()))?;
        let recomputed_digest = s.digest();
        let mut check = |what: &str, a: String, b: String| {
            if a != b {
                mismatches.push(format!("{what}: stored {a}, recomputed {b}"));
            }
        };
        check("digest", d.digest.clone(), recomputed_digest.clone());
        check("rows digest", d.digest.clone(), rows_digest.clone());
        check(
            "commission",
            d.commission.to_string(),
            s.commission.to_string(),
        );
        check("credited", d.credited.to_string(), s.credited.to_string());
        check(
            "total_weight",
            d.total_weight.clone(),
            s.total_weight.to_string(),
        );
        check(
            "carry_before",
            d.carry_before.clone(),
            s.carry_before_sum().to_string(),
        );
        check(
            "carry_after",
            d.carry_after.clone(),
            s.carry_after_sum().to_string(),
        );
        check("dust_after", d.dust_after.clone(), s.dust_after.to_string());
        Ok(VerifyReport {
            id,
            ok: mismatches.is_empty(),
            stored_digest: d.digest,
            rows_digest,
            recomputed_digest,
            mismatches,
        })
    }

    async fn write_credits<'c, DB: sqlx::Database>(
        &self,
        tx: &mut sqlx::Transaction<'c, DB>,
        dist_id: i64,
        asset: &str,
        splitter: &mut Splitter,
        shares: Vec<Share>,
        now: Timestamp,
    ) -> Result<(u64, String, Vec<CreditLine>), StoreError>
    where
        Self: WriteCredits<DB>,
    {
        <Self as WriteCredits<DB>>::write(tx, dist_id, asset, splitter, shares, now).await
    }
}

/// Backend-specific bulk write of credit rows, each line made by the
/// splitter as it is written. Returns the rows written, the digest of the
/// lines (the same as [`Split::digest`], computed from the strings written)
/// and the lines, for [`Splitter::finish`].
///
/// Rows get outbox positions `first_position(..)`, `+1`, ... in the order
/// written; the caller holds the outbox lock (see [`OUTBOX_LOCK`]) so
/// positions become visible in order.
pub(crate) trait WriteCredits<DB: sqlx::Database> {
    async fn write(
        tx: &mut sqlx::Transaction<'_, DB>,
        dist_id: i64,
        asset: &str,
        splitter: &mut Splitter,
        shares: Vec<Share>,
        now: Timestamp,
    ) -> Result<(u64, String, Vec<CreditLine>), StoreError>;
}

/// PostgreSQL advisory lock (with key 0) taken before credits get their
/// outbox positions and held to commit: distributions of different assets
/// run concurrently, and without it a later position could commit first
/// and an exchange paging by position would step over the earlier one.
/// (SQLite write transactions are serialized already.)
pub(crate) const OUTBOX_LOCK: i32 = 7403;

/// The first outbox position of a distribution written at `now` after
/// positions up to `max`: positions only grow, and after a database
/// restore (which rolls `max` back) they still sort after everything
/// published before, because time moved on (`now` x 10^9 leaves room for
/// 10^9 credits a second).
pub(crate) fn first_position(max: i64, now: Timestamp) -> i64 {
    let by_time = now.unix().saturating_mul(1_000_000_000);
    max.saturating_add(1).max(by_time)
}

fn refused(e: softstake_ledger::split::SplitError) -> StoreError {
    StoreError::Invalid(format!("distribution refused: {e}"))
}

/// One credit line's columns as text, fed to the digest as they are made.
struct LineText {
    amount: String,
    weight: String,
    carry: String,
}

fn line_text(h: &mut Sha256, l: &CreditLine) -> LineText {
    let t = LineText {
        amount: l.amount.to_string(),
        // Weights of real balances fit 128 bits, whose formatting is several
        // times faster than the 256-bit one; the digits are the same.
        weight: u128::try_from(l.weight).map_or_else(|_| l.weight.to_string(), |w| w.to_string()),
        carry: l.carry_after.to_string(),
    };
    for part in [
        l.user_id.as_str(),
        "\t",
        &t.amount,
        "\t",
        &t.weight,
        "\t",
        &t.carry,
        "\n",
    ] {
        h.update(part.as_bytes());
    }
    t
}

impl WriteCredits<sqlx::Postgres> for crate::Store {
    async fn write(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        dist_id: i64,
        asset: &str,
        splitter: &mut Splitter,
        shares: Vec<Share>,
        now: Timestamp,
    ) -> Result<(u64, String, Vec<CreditLine>), StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock($1, 0)")
            .bind(OUTBOX_LOCK)
            .execute(&mut **tx)
            .await?;
        let max: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM credits")
            .fetch_one(&mut **tx)
            .await?;
        let mut position = first_position(max, now);
        let mut copy = tx
            .copy_in_raw("COPY credits (distribution_id, user_id, asset, amount, weight, carry_after, position) FROM STDIN")
            .await?;
        let mut h = Sha256::new();
        let asset = copy_escape(asset);
        let mut buf = String::with_capacity(1 << 20);
        let mut lines = Vec::with_capacity(shares.len());
        for share in shares {
            // An error here drops `copy` unfinished: the transaction is
            // aborted and rolled back.
            let l = splitter.line(share).map_err(refused)?;
            let t = line_text(&mut h, &l);
            buf.push_str(&format!(
                "{dist_id}\t{}\t{asset}\t{}\t{}\t{}\t{position}\n",
                copy_escape(&l.user_id),
                t.amount,
                t.weight,
                t.carry
            ));
            position = position.saturating_add(1);
            lines.push(l);
            if buf.len() > (1 << 20) {
                copy.send(buf.as_bytes()).await?;
                buf.clear();
            }
        }
        if !buf.is_empty() {
            copy.send(buf.as_bytes()).await?;
        }
        Ok((copy.finish().await?, hex::encode(h.finalize()), lines))
    }
}

impl WriteCredits<sqlx::Sqlite> for crate::Store {
    async fn write(
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        dist_id: i64,
        asset: &str,
        splitter: &mut Splitter,
        shares: Vec<Share>,
        now: Timestamp,
    ) -> Result<(u64, String, Vec<CreditLine>), StoreError> {
        let max: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM credits")
            .fetch_one(&mut **tx)
            .await?;
        let mut position = first_position(max, now);
        let mut h = Sha256::new();
        let mut written = 0;
        let mut lines = Vec::with_capacity(shares.len());
        let mut shares = shares.into_iter();
        // The next chunk's lines and their text.
        let mut make = |h: &mut Sha256| -> Result<(Vec<CreditLine>, Vec<LineText>), StoreError> {
            let mut ls = Vec::with_capacity(SQLITE_CHUNK);
            let mut ts = Vec::with_capacity(SQLITE_CHUNK);
            for share in shares.by_ref().take(SQLITE_CHUNK) {
                let l = splitter.line(share).map_err(refused)?;
                ts.push(line_text(h, &l));
                ls.push(l);
            }
            Ok((ls, ts))
        };
        let (mut cur, mut cur_text) = make(&mut h)?;
        while !cur.is_empty() {
            let mut sql = String::from(
                "INSERT INTO credits (distribution_id, user_id, asset, amount, weight, carry_after, position) VALUES ",
            );
            // `?`, not `$N`: sqlx-sqlite resolves `$N` names per bind
            // (sqlite3_bind_parameter_name), quadratic in the row count.
            sql.push_str(&vec!["(?,?,?,?,?,?,?)"; cur.len()].join(","));
            // Only placeholders are interpolated; values are bound.
            // Not cached: each chunk size is another statement text (measured:
            // cached, they held ~50 KB each in every connection's cache).
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
            for (l, t) in cur.iter().zip(cur_text) {
                q = q
                    .bind(dist_id)
                    .bind(l.user_id.as_str())
                    .bind(asset)
                    .bind(t.amount)
                    .bind(t.weight)
                    .bind(t.carry)
                    .bind(position);
                position = position.saturating_add(1);
            }
            // The next chunk's lines are split and formatted while SQLite's
            // worker thread inserts this one.
            let (r, made) = tokio::join!(q.execute(&mut **tx), async { make(&mut h) });
            written += r?.rows_affected();
            lines.append(&mut cur);
            (cur, cur_text) = made?;
        }
        Ok((written, hex::encode(h.finalize()), lines))
    }
}

/// Escapes a value for PostgreSQL's COPY text format.
fn copy_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

/// Takes the users' open shares of the chain's losses from the credits of
/// a distribution (loss_rule.rs): oldest loss first, each user's netting at
/// most their credit, so a paid credit is never negative. Returns the base
/// units netted. Once per database (the same SQL on both).
pub(crate) trait NetLosses {
    async fn net(
        tx: &mut Self,
        chain: &str,
        dist_id: i64,
        period_end: i64,
        lines: &[CreditLine],
    ) -> Result<Amount, StoreError>;
}

macro_rules! net_losses_for {
    ($db:ty) => {
        impl NetLosses for sqlx::Transaction<'_, $db> {
            async fn net(
                tx: &mut Self,
                chain: &str,
                dist_id: i64,
                period_end: i64,
                lines: &[CreditLine],
            ) -> Result<Amount, StoreError> {
                let open: Vec<(i64, String, String)> = sqlx::query_as(
                    "SELECT a.loss_id, a.user_id, a.remaining FROM loss_allocations a JOIN pool_losses l ON l.id = a.loss_id \
                     WHERE l.chain = $1 AND a.remaining <> '0' AND l.net_until > $2 ORDER BY a.loss_id, a.user_id",
                )
                .bind(chain)
                .bind(period_end)
                .fetch_all(&mut **tx)
                .await?;
                if open.is_empty() {
                    return Ok(Amount::ZERO);
                }
                let owing: std::collections::HashSet<&str> =
                    open.iter().map(|(_, u, _)| u.as_str()).collect();
                let mut left: std::collections::HashMap<&str, Amount> = lines
                    .iter()
                    .filter(|l| !l.amount.is_zero() && owing.contains(l.user_id.as_str()))
                    .map(|l| (l.user_id.as_str(), l.amount))
                    .collect();
                let mut netted: std::collections::BTreeMap<&str, Amount> = Default::default();
                let mut total = Amount::ZERO;
                for (loss_id, user, remaining) in &open {
                    let Some(credit) = left.get_mut(user.as_str()) else {
                        continue;
                    };
                    let remaining = parse_amount("loss_allocations.remaining", remaining)?;
                    let n = remaining.min(*credit);
                    if n.is_zero() {
                        continue;
                    }
                    *credit = credit.checked_sub(n).unwrap_or(Amount::ZERO);
                    let after = remaining.checked_sub(n).unwrap_or(Amount::ZERO);
                    sqlx::query(
                        "INSERT INTO loss_nettings (distribution_id, loss_id, user_id, amount) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(dist_id)
                    .bind(*loss_id)
                    .bind(user.as_str())
                    .bind(n.to_string())
                    .execute(&mut **tx)
                    .await?;
                    sqlx::query("UPDATE loss_allocations SET remaining = $1 WHERE loss_id = $2 AND user_id = $3")
                        .bind(after.to_string())
                        .bind(*loss_id)
                        .bind(user.as_str())
                        .execute(&mut **tx)
                        .await?;
                    let e = netted.entry(user.as_str()).or_insert(Amount::ZERO);
                    *e = e.checked_add(n).ok_or_else(|| StoreError::Invalid("netting overflows".into()))?;
                    total = total.checked_add(n).ok_or_else(|| StoreError::Invalid("netting overflows".into()))?;
                }
                for (user, n) in netted {
                    sqlx::query("UPDATE credits SET netted = $1 WHERE distribution_id = $2 AND user_id = $3")
                        .bind(n.to_string())
                        .bind(dist_id)
                        .bind(user)
                        .execute(&mut **tx)
                        .await?;
                }
                if !total.is_zero() {
                    tracing::info!(chain, distribution = dist_id, netted = %total, "users' loss shares netted against their credits");
                }
                Ok(total)
            }
        }
    };
}
net_losses_for!(sqlx::Sqlite);
net_losses_for!(sqlx::Postgres);

fn share(user_id: String, weight: U256) -> Share {
    Share {
        user_id,
        weight,
        carry_before: 0,
    }
}

/// Users with weight, sorted by bytes (the split's order; the carries are
/// read aligned with it).
fn weighted(mut shares: Vec<Share>) -> Vec<Share> {
    shares.retain(|s| !s.weight.is_zero());
    shares.sort_unstable_by(|a, b| a.user_id.as_bytes().cmp(b.user_id.as_bytes()));
    shares
}

/// Sets each share's carry from `carries`, aligned with `shares`.
fn set_carries(shares: &mut [Share], carries: Vec<u128>) -> Result<(), StoreError> {
    if carries.len() != shares.len() {
        return Err(StoreError::Corrupt(format!(
            "{} carries for {} users",
            carries.len(),
            shares.len()
        )));
    }
    for (s, c) in shares.iter_mut().zip(carries) {
        s.carry_before = c;
    }
    Ok(())
}

fn dust_in(dust: Option<String>) -> Result<U256, StoreError> {
    match dust {
        Some(d) => u256("distributions.dust_after", &d),
        None => Ok(U256::ZERO),
    }
}

/// A splitter over the totals of `shares` (from [`weighted`], carries set).
fn start_split(
    gross: &Amount,
    rate: Rate,
    shares: &[Share],
    dust: Option<String>,
) -> Result<Splitter, StoreError> {
    let total_weight = shares
        .iter()
        .try_fold(U256::ZERO, |acc, s| acc.checked_add(s.weight))
        .ok_or_else(|| refused(softstake_ledger::split::SplitError::WeightOverflow))?;
    Splitter::new(*gross, rate, dust_in(dust)?, total_weight, shares.len()).map_err(refused)
}

/// The whole split of `shares` at once (verification).
fn make_split(
    gross: &Amount,
    rate: Rate,
    shares: Vec<Share>,
    dust: Option<String>,
) -> Result<Split, StoreError> {
    split(SplitInput {
        gross: *gross,
        commission_rate: rate,
        dust_before: dust_in(dust)?,
        shares,
    })
    .map_err(refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_parses_length_prefixed_users_and_flags_same_second_updates() {
        let period =
            softstake_core::Period::new(Timestamp::from_unix(100), Timestamp::from_unix(200))
                .unwrap();
        // "a;b" holds 5 from 50 and 7 from 150; "ü:" has two updates at
        // 150, listed in the order that would be wrong by row id.
        let page = "3:a;b5 50,7 150;2:ü:20 150,0 150,1 90";
        let (mut hist, mut keyed, mut out, mut tied) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        parse_page(
            page,
            period,
            Amount::ZERO,
            &mut hist,
            &mut keyed,
            &mut out,
            &mut tied,
        )
        .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].user_id, "a;b");
        assert_eq!(out[0].weight, U256::from(5u32 * 50 + 7 * 50));
        assert_eq!(out[1].user_id, "ü:");
        assert_eq!(
            tied,
            vec![1],
            "the same-second updates must be re-read in row order"
        );
        // Damaged pages are refused, not guessed at.
        for bad in ["3:a;b5 50 9", "x:ab1 2", "1:a1"] {
            let mut out = Vec::new();
            assert!(
                parse_page(
                    bad,
                    period,
                    Amount::ZERO,
                    &mut hist,
                    &mut keyed,
                    &mut out,
                    &mut tied
                )
                .is_err(),
                "{bad}"
            );
        }
    }
}
