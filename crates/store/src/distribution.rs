//! Distributing one reward, in one transaction.
//!
//! Reads the asset's balance histories (streamed), the users' carried
//! remainders (carry_after of their latest credit) and the pool dust (of the
//! latest distribution), splits with `softstake_ledger::split`, checks
//! conservation, and writes the distribution row and every credit row in
//! bulk (PostgreSQL: COPY; SQLite: multi-row INSERTs). All or nothing.

use crate::{StoreError, on_pool, parse_amount};
use futures_util::TryStreamExt;
use rust_decimal::Decimal;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use softstake_core::{Amount, Rate, Timestamp};
use softstake_ledger::U256;
use softstake_ledger::split::{CreditLine, Share, Split, SplitInput, digest_lines, split};
use softstake_ledger::weights::{Point, weight};
use std::collections::HashMap;
use std::str::FromStr;

/// Rows per SQLite INSERT (6 `?` parameters each; see balances.rs).
const SQLITE_CHUNK: usize = 500;

/// Options for [`crate::Store::distribute`].
#[derive(Debug, Clone, Default)]
pub struct DistributeOptions {
    /// Per-asset eligibility minimum (time below it counts zero).
    pub min_balance: Amount,
    /// Test hook: fail after writing the credits, before commit, to prove
    /// the transaction leaves nothing behind.
    #[doc(hidden)]
    pub fail_before_commit: bool,
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
/// PostgreSQL streams one row per update. SQLite packs each user's history
/// into one row (`group_concat` ordered by time, id), because sqlx-sqlite
/// hands rows from its worker thread one at a time over a channel, and the
/// per-row wake-ups cost more than the query. Both give the same points.
pub(crate) trait ReadWeights<C> {
    async fn weights(
        conn: &mut C,
        asset: &str,
        period: softstake_core::Period,
        min: Amount,
    ) -> Result<Vec<(String, U256)>, StoreError>;
}

impl ReadWeights<sqlx::PgConnection> for crate::Store {
    async fn weights(
        conn: &mut sqlx::PgConnection,
        asset: &str,
        period: softstake_core::Period,
        min: Amount,
    ) -> Result<Vec<(String, U256)>, StoreError> {
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
                    out.push((prev, weight(&hist, period, min)));
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
            out.push((prev, weight(&hist, period, min)));
        }
        Ok(out)
    }
}

/// Users packed into one SQLite row (see [`ReadWeights`]).
const USERS_PER_ROW: i64 = 1_000;

impl ReadWeights<sqlx::SqliteConnection> for crate::Store {
    async fn weights(
        conn: &mut sqlx::SqliteConnection,
        asset: &str,
        period: softstake_core::Period,
        min: Amount,
    ) -> Result<Vec<(String, U256)>, StoreError> {
        // Each user becomes `LEN:USER_ID` followed by `BALANCE AT ID,...`,
        // and up to USERS_PER_ROW users share one row, separated by ';'. The
        // user id is length-prefixed (in characters), so it may contain any
        // separator; the history is digits, spaces and commas only. No order
        // is asked of SQLite (ordered aggregates sort every group): points
        // are sorted by (time, id) here and users by bytes in the split.
        // Only text is concatenated and row counters divided: SQL does no
        // arithmetic on money.
        let mut rows = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!(
            "SELECT group_concat(length(user_id) || ':' || user_id || hist, ';') FROM ( \
               SELECT user_id, group_concat(balance || ' ' || effective_at || ' ' || id, ',') AS hist, \
                      (row_number() OVER () - 1) / {USERS_PER_ROW} AS bucket \
               FROM balance_updates WHERE asset = ? AND effective_at < ? GROUP BY user_id \
             ) GROUP BY bucket"
        )))
        .bind(asset)
        .bind(period.end().unix())
        .fetch(conn);
        let bad = |v: &str| StoreError::Corrupt(format!("balance_updates history near {v:?}"));
        let mut out = Vec::new();
        let mut hist: Vec<Point> = Vec::new();
        let mut keyed: Vec<((i64, i64), Amount)> = Vec::new();
        // Rows are parsed as SQLite's worker thread produces the next ones.
        while let Some(row) = rows.try_next().await? {
            let mut rest = row.as_str();
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
                    let (Some(bal), Some(at), Some(id), None) =
                        (f.next(), f.next(), f.next(), f.next())
                    else {
                        return Err(bad(item));
                    };
                    let at: i64 = at.parse().map_err(|_| bad(item))?;
                    let id: i64 = id.parse().map_err(|_| bad(item))?;
                    keyed.push(((at, id), parse_amount("balance_updates.balance", bal)?));
                }
                // Time order, ties by row id: never trust the scan order.
                keyed.sort_unstable_by_key(|(k, _)| *k);
                hist.clear();
                hist.extend(keyed.iter().map(|((at, _), balance)| Point {
                    at: Timestamp::from_unix(*at),
                    balance: *balance,
                }));
                out.push((user.to_owned(), weight(&hist, period, min)));
                rest = next;
            }
        }
        Ok(out)
    }
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
        let asset = reward.asset.clone();
        let (start, end) = (
            reward.reward.period.start().unix(),
            reward.reward.period.end().unix(),
        );
        let id = on_pool!(self, pool => {
            let mut tx = crate::BeginWrite::begin_write(pool).await?;
            // Serialize distributions of one asset: carries and dust are
            // read-modify-write.
            <Self as crate::AssetLock<_>>::lock(&mut tx, reward.reward.chain).await?;
            // Re-check under the lock: exactly once.
            let done: Option<i64> = sqlx::query_scalar("SELECT id FROM distributions WHERE reward_id = $1")
                .bind(reward_id)
                .fetch_optional(&mut *tx)
                .await?;
            if done.is_some() {
                tx.rollback().await?;
                None
            } else {
                let period = softstake_core::Period::new(Timestamp::from_unix(start), Timestamp::from_unix(end))
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let t_read = std::time::Instant::now();
                let weights = <Self as ReadWeights<_>>::weights(&mut *tx, &asset, period, opts.min_balance).await?;
                let read_ms = t_read.elapsed().as_millis();
                let carries: Vec<(String, String)> = sqlx::query_as(
                    "SELECT c.user_id, c.carry_after FROM credits c JOIN \
                     (SELECT user_id, MAX(id) AS id FROM credits WHERE asset = $1 GROUP BY user_id) m ON m.id = c.id",
                )
                .bind(asset.clone())
                .fetch_all(&mut *tx)
                .await?;
                let dust: Option<String> = sqlx::query_scalar(
                    "SELECT dust_after FROM distributions WHERE asset = $1 ORDER BY id DESC LIMIT 1",
                )
                .bind(asset.clone())
                .fetch_optional(&mut *tx)
                .await?;
                let t_split = std::time::Instant::now();
                let s = make_split(&reward.reward.amount, rate, weights, carries, dust)?;
                let split_ms = t_split.elapsed().as_millis();
                let dist_id: i64 = sqlx::query_scalar(
                    "INSERT INTO distributions (reward_id, asset, gross, commission_rate, min_balance, commission, users_pool, credited, \
                     users_credited, total_weight, carry_before, carry_after, dust_before, dust_after, digest, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id",
                )
                .bind(reward_id)
                .bind(asset.clone())
                .bind(s.gross.to_string())
                .bind(rate.to_string())
                .bind(opts.min_balance.to_string())
                .bind(s.commission.to_string())
                .bind(s.users_pool.to_string())
                .bind(s.credited.to_string())
                .bind(i64::try_from(s.lines.len()).unwrap_or(i64::MAX))
                .bind(s.total_weight.to_string())
                .bind(s.carry_before_sum().to_string())
                .bind(s.carry_after_sum().to_string())
                .bind(s.dust_before.to_string())
                .bind(s.dust_after.to_string())
                // Set below from the very strings the credit rows are
                // written with (one formatting pass, hashed as written).
                .bind(String::new())
                .bind(now.unix())
                .fetch_one(&mut *tx)
                .await?;
                let t_write = std::time::Instant::now();
                let (written, digest) = self.write_credits(&mut tx, dist_id, &asset, &s).await?;
                tracing::debug!(read_ms, split_ms, write_ms = t_write.elapsed().as_millis(), users = s.lines.len(), "distribution phases");
                sqlx::query("UPDATE distributions SET digest = $1 WHERE id = $2")
                    .bind(digest)
                    .bind(dist_id)
                    .execute(&mut *tx)
                    .await?;
                if written != s.lines.len() as u64 {
                    return Err(StoreError::Invalid(format!(
                        "wrote {written} credit rows for {} lines; rolled back",
                        s.lines.len()
                    )));
                }
                if opts.fail_before_commit {
                    return Err(StoreError::Invalid("injected failure before commit".into()));
                }
                tx.commit().await?;
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
        let (weights, carries, rows) = on_pool!(self, pool => {
            let period = softstake_core::Period::new(Timestamp::from_unix(start), Timestamp::from_unix(end))
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let mut conn = pool.acquire().await?;
            let w = <Self as ReadWeights<_>>::weights(&mut *conn, &d.asset, period, d.min_balance).await?;
            let c: Vec<(String, String)> = sqlx::query_as(
                "SELECT c.user_id, c.carry_after FROM credits c JOIN \
                 (SELECT user_id, MAX(id) AS id FROM credits WHERE asset = $1 AND distribution_id < $2 GROUP BY user_id) m ON m.id = c.id",
            )
            .bind(d.asset.clone())
            .bind(id)
            .fetch_all(pool)
            .await?;
            let r: Vec<(String, String, String, String)> = sqlx::query_as(
                "SELECT user_id, amount, weight, carry_after FROM credits WHERE distribution_id = $1",
            )
            .bind(id)
            .fetch_all(pool)
            .await?;
            (w, c, r)
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
        let s = make_split(
            &d.gross,
            rate,
            weights,
            carries,
            Some(d.dust_before.clone()),
        )?;
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
        s: &Split,
    ) -> Result<(u64, String), StoreError>
    where
        Self: WriteCredits<DB>,
    {
        <Self as WriteCredits<DB>>::write(tx, dist_id, asset, s).await
    }
}

/// Backend-specific bulk write of credit rows. Returns the rows written and
/// the digest of the lines (the same as [`Split::digest`], computed from the
/// strings written).
pub(crate) trait WriteCredits<DB: sqlx::Database> {
    async fn write(
        tx: &mut sqlx::Transaction<'_, DB>,
        dist_id: i64,
        asset: &str,
        s: &Split,
    ) -> Result<(u64, String), StoreError>;
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
        weight: l.weight.to_string(),
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
        s: &Split,
    ) -> Result<(u64, String), StoreError> {
        let mut copy = tx
            .copy_in_raw("COPY credits (distribution_id, user_id, asset, amount, weight, carry_after) FROM STDIN")
            .await?;
        let mut h = Sha256::new();
        let asset = copy_escape(asset);
        let mut buf = String::with_capacity(1 << 20);
        for l in &s.lines {
            let t = line_text(&mut h, l);
            buf.push_str(&format!(
                "{dist_id}\t{}\t{asset}\t{}\t{}\t{}\n",
                copy_escape(&l.user_id),
                t.amount,
                t.weight,
                t.carry
            ));
            if buf.len() > (1 << 20) {
                copy.send(buf.as_bytes()).await?;
                buf.clear();
            }
        }
        if !buf.is_empty() {
            copy.send(buf.as_bytes()).await?;
        }
        Ok((copy.finish().await?, hex::encode(h.finalize())))
    }
}

impl WriteCredits<sqlx::Sqlite> for crate::Store {
    async fn write(
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        dist_id: i64,
        asset: &str,
        s: &Split,
    ) -> Result<(u64, String), StoreError> {
        let mut h = Sha256::new();
        let mut written = 0;
        let chunks: Vec<&[CreditLine]> = s.lines.chunks(SQLITE_CHUNK).collect();
        let texts = |h: &mut Sha256, chunk: &[CreditLine]| -> Vec<LineText> {
            chunk.iter().map(|l| line_text(h, l)).collect()
        };
        let mut next = chunks.first().map(|c| texts(&mut h, c));
        for (i, chunk) in chunks.iter().enumerate() {
            let Some(cur) = next.take() else { break };
            let mut sql = String::from(
                "INSERT INTO credits (distribution_id, user_id, asset, amount, weight, carry_after) VALUES ",
            );
            // `?`, not `$N`: sqlx-sqlite resolves `$N` names per bind
            // (sqlite3_bind_parameter_name), quadratic in the row count.
            sql.push_str(&vec!["(?,?,?,?,?,?)"; chunk.len()].join(","));
            // Only placeholders are interpolated; values are bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (l, t) in chunk.iter().zip(cur) {
                q = q
                    .bind(dist_id)
                    .bind(l.user_id.as_str())
                    .bind(asset)
                    .bind(t.amount)
                    .bind(t.weight)
                    .bind(t.carry);
            }
            // The next chunk's text is made while SQLite's worker thread
            // inserts this one.
            let following = chunks.get(i + 1);
            let (r, made) = tokio::join!(q.execute(&mut **tx), async {
                following.map(|c| texts(&mut h, c))
            });
            written += r?.rows_affected();
            next = made;
        }
        Ok((written, hex::encode(h.finalize())))
    }
}

/// Escapes a value for PostgreSQL's COPY text format.
fn copy_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

fn make_split(
    gross: &Amount,
    rate: Rate,
    weights: Vec<(String, U256)>,
    carries: Vec<(String, String)>,
    dust: Option<String>,
) -> Result<Split, StoreError> {
    let mut carry_of: HashMap<String, u128> = HashMap::with_capacity(carries.len());
    for (u, c) in carries {
        carry_of.insert(u, carry("credits.carry_after", &c)?);
    }
    let dust_before = match dust {
        Some(d) => u256("distributions.dust_after", &d)?,
        None => U256::ZERO,
    };
    let shares = weights
        .into_iter()
        .filter(|(_, w)| !w.is_zero())
        .map(|(user_id, weight)| Share {
            carry_before: carry_of.get(&user_id).copied().unwrap_or(0),
            user_id,
            weight,
        })
        .collect();
    split(SplitInput {
        gross: *gross,
        commission_rate: rate,
        dust_before,
        shares,
    })
    .map_err(|e| StoreError::Invalid(format!("distribution refused: {e}")))
}
