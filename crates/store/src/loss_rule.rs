//! Losses borne by a rule, and the `users` rule's allocations and netting.
//!
//! Every loss a snapshot books (reported by the chain against a validator,
//! or a fall that persisted) gets a `pool_losses` row with its period and
//! the rule in force (books.rs). Under `users`:
//!
//! 1. **Allocation** ([`crate::Store::allocate_losses`], right after the
//!    snapshot commits, or by the next snapshot after a crash): the
//!    commission-first part where configured (what the platform's
//!    commission account holds above zero, at most the loss), then the rest
//!    over the users with weight in the loss's period (the chain's
//!    eligibility minimum applies, as for rewards), rounded down per user
//!    (`softstake_ledger::loss`); one transaction, so a loss is allocated
//!    whole and once.
//! 2. **Netting** (in the distribution's transaction, distribution.rs): each
//!    user's open shares of the chain's losses (`remaining > 0`, whose
//!    `net_until` is after the reward's period end), oldest loss first, are
//!    taken from the user's credit of that distribution: `loss_nettings`
//!    rows, `credits.netted`, the share's `remaining` lowered. The credit
//!    row, its digest and `distributions verify` are unchanged (the split is
//!    gross); the outbox pays `amount - netted`, never below zero. No
//!    distribution of a chain runs while one of its losses waits for
//!    allocation, so a credit is netted against every loss booked before.
//! 3. **Write-off**: a share still open once `net_until` has passed is the
//!    platform's (its shortfall), as is everything the allocation left to
//!    the platform.
//!
//! An undeclared outflow an operator books as a loss (theft, a fee nobody
//! signed) is always the platform's: it is not a protocol loss of staking.

use crate::distribution::ReadWeights;
use crate::{StoreError, on_pool, parse_amount};
use serde::Serialize;
use softstake_core::{Amount, ChainId, Period, Timestamp};
use softstake_ledger::U256;

pub use softstake_core::config::BooksSettings as LossPolicy;

/// Rows per multi-row INSERT of allocations (5 parameters each).
const CHUNK: usize = 500;

/// A loss the books booked (any rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LossRecord {
    /// Row id.
    pub id: i64,
    /// Chain.
    pub chain: ChainId,
    /// `loss:KIND:START-END:AS_OF`: the chain times of its period and of
    /// the snapshot that booked it.
    pub key: String,
    /// `reported` (the chain reported it against a validator) or
    /// `recognized` (a fall in holdings that persisted).
    pub kind: String,
    /// The rule in force when it was booked: `platform`, `pool`, `users`.
    pub rule: String,
    /// Base units lost.
    pub amount: Amount,
    /// When it was incurred (the snapshot interval it fell in).
    pub period_start: Timestamp,
    /// End of that interval.
    pub period_end: Timestamp,
    /// `users`: shares are netted against credits of rewards whose period
    /// ends before this; what remains then is the platform's.
    pub net_until: Timestamp,
    /// `users`: whether the commission owed was taken first.
    pub commission_first: bool,
    /// `users`, once allocated: what the platform bears (commission first,
    /// rounding, everything when nobody held).
    pub platform_part: Option<Amount>,
    /// `users`, once allocated: what users bear.
    pub users_part: Option<Amount>,
    /// `users`, once allocated: users with a share.
    pub users: Option<i64>,
    /// Snapshot that booked it.
    pub snapshot_id: i64,
    /// When it was booked.
    pub booked_at: Timestamp,
    /// When it was allocated (`users`), or booked (other rules).
    pub allocated_at: Option<Timestamp>,
}

/// A user's share of a loss, for statements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LossShareLine {
    /// Chain.
    pub chain: ChainId,
    /// Asset.
    pub asset: String,
    /// The loss ([`LossRecord::key`]).
    pub loss_key: String,
    /// `reported` or `recognized`.
    pub kind: String,
    /// When the loss was incurred.
    pub period_start: Timestamp,
    /// End of that interval.
    pub period_end: Timestamp,
    /// The user's share (base units).
    pub amount: Amount,
    /// Display units.
    pub amount_display: String,
    /// Taken from the user's credits so far.
    pub netted: Amount,
    /// Still to be netted (zero once netted or written off).
    pub remaining: Amount,
    /// Whether the netting horizon has passed: what remained then is the
    /// platform's, never the user's.
    pub written_off: bool,
    /// The netting horizon.
    pub net_until: Timestamp,
}

/// What users owe the pool under the `users` rule, and what the platform
/// bears of the losses allocated under it (base units).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UsersLosses {
    /// Every loss booked under `users`.
    pub booked: Amount,
    /// Allocated to users.
    pub allocated: Amount,
    /// Taken from their credits.
    pub netted: Amount,
    /// Still to be netted within the horizon: the users' debt to the pool.
    pub receivable: Amount,
    /// Shares whose horizon passed before they were netted.
    pub written_off: Amount,
    /// What the platform bears: commission-first parts, rounding, losses
    /// nobody held for, shares written off, and losses booked but not
    /// allocated yet.
    pub platform: Amount,
}

type LossRow = (
    i64,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    bool,
    Option<String>,
    Option<String>,
    Option<i64>,
    i64,
    i64,
    Option<i64>,
);

/// id, amount, platform part, users part, net until.
type UsersLossRow = (i64, String, Option<String>, Option<String>, i64);

type ShareRow = (String, String, String, i64, i64, i64, String, String);

const SELECT_LOSS: &str = "SELECT id, chain, loss_key, kind, rule, amount, period_start, period_end, net_until, commission_first, \
     platform_part, users_part, users, snapshot_id, booked_at, allocated_at FROM pool_losses";

fn loss(r: LossRow) -> Result<LossRecord, StoreError> {
    let opt = |c: &str, v: Option<String>| v.map(|v| parse_amount(c, &v)).transpose();
    Ok(LossRecord {
        id: r.0,
        chain: r
            .1
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("pool_losses.chain: {e}")))?,
        key: r.2,
        kind: r.3,
        rule: r.4,
        amount: parse_amount("pool_losses.amount", &r.5)?,
        period_start: Timestamp::from_unix(r.6),
        period_end: Timestamp::from_unix(r.7),
        net_until: Timestamp::from_unix(r.8),
        commission_first: r.9,
        platform_part: opt("pool_losses.platform_part", r.10)?,
        users_part: opt("pool_losses.users_part", r.11)?,
        users: r.12,
        snapshot_id: r.13,
        booked_at: Timestamp::from_unix(r.14),
        allocated_at: r.15.map(Timestamp::from_unix),
    })
}

fn overflow() -> StoreError {
    StoreError::Invalid("loss amounts overflow".into())
}

impl crate::Store {
    /// The chain's losses, newest first, at most `limit`.
    pub async fn losses(&self, chain: ChainId, limit: u32) -> Result<Vec<LossRecord>, StoreError> {
        let rows: Vec<LossRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT_LOSS} WHERE chain = $1 ORDER BY id DESC LIMIT $2")))
                .bind(chain.as_str())
                .bind(i64::from(limit.clamp(1, 10_000)))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(loss).collect()
    }

    /// Allocates every loss of the chain booked under `users` and not
    /// allocated yet (module docs). Idempotent: a loss already allocated
    /// is left alone (re-checked under the asset lock).
    pub async fn allocate_losses(
        &self,
        chain: ChainId,
        policy: &LossPolicy,
        min_balance: Amount,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let c = chain.as_str();
        let pending: Vec<LossRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT_LOSS} WHERE chain = $1 AND rule = 'users' AND allocated_at IS NULL ORDER BY id"
            )))
            .bind(c)
            .fetch_all(pool)
            .await?
        });
        if pending.is_empty() {
            return Ok(0);
        }
        let pending: Vec<LossRecord> = pending.into_iter().map(loss).collect::<Result<_, _>>()?;
        // What the platform's commission account holds above zero, for a
        // loss taken from commission first (read before the transaction:
        // the chain's own loop is the only writer of its distributions and
        // snapshots, and a pending loss is charged to nobody yet).
        let mut available = if pending.iter().any(|l| l.commission_first) {
            // The books charge a loss waiting for allocation to the
            // platform (nobody else bears it yet): add those back.
            let b = self.books(chain, policy, now).await?;
            let mut before = b.owed.commission;
            for l in &pending {
                before = before
                    .checked_add(i128::try_from(l.amount.base()).map_err(|_| overflow())?)
                    .ok_or_else(overflow)?;
            }
            Amount::from_base(u128::try_from(before.max(0)).map_err(|_| overflow())?)
        } else {
            Amount::ZERO
        };
        let asset = chain.asset();
        let mut done = 0u64;
        on_pool!(self, pool => {
            let mut tx = crate::BeginWrite::begin_write(pool).await?;
            crate::fence::FenceCheck::check_fence(&mut tx, self.fence.as_ref()).await?;
            <Self as crate::AssetLock<_>>::lock(&mut tx, chain).await?;
            for l in &pending {
                let still: Option<Option<i64>> = sqlx::query_scalar("SELECT allocated_at FROM pool_losses WHERE id = $1")
                    .bind(l.id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if still != Some(None) {
                    continue;
                }
                let period = Period::new(l.period_start, l.period_end)
                    .map_err(|e| StoreError::Corrupt(format!("pool_losses {}: {e}", l.id)))?;
                let mut weights: Vec<(String, U256)> =
                    <Self as ReadWeights<_>>::weights(&mut *tx, asset, period, min_balance)
                        .await?
                        .into_iter()
                        .filter(|s| !s.weight.is_zero())
                        .map(|s| (s.user_id, s.weight))
                        .collect();
                weights.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                let first = if l.commission_first { available.min(l.amount) } else { Amount::ZERO };
                available = available.checked_sub(first).unwrap_or(Amount::ZERO);
                let a = softstake_ledger::loss::allocate(l.amount, first, weights)
                    .map_err(|e| StoreError::Invalid(format!("loss {}: {e}", l.key)))?;
                let rows: Vec<_> = a.shares.iter().filter(|s| !s.amount.is_zero()).collect();
                for chunk in rows.chunks(CHUNK) {
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO loss_allocations (loss_id, user_id, weight, amount, remaining) ",
                    );
                    q.push_values(chunk, |mut b, s| {
                        b.push_bind(l.id)
                            .push_bind(s.user_id.clone())
                            .push_bind(s.weight.to_string())
                            .push_bind(s.amount.to_string())
                            .push_bind(s.amount.to_string());
                    });
                    q.build().execute(&mut *tx).await?;
                }
                sqlx::query(
                    "UPDATE pool_losses SET platform_part = $1, users_part = $2, users = $3, total_weight = $4, allocated_at = $5 WHERE id = $6",
                )
                .bind(a.platform.to_string())
                .bind(a.users.to_string())
                .bind(i64::try_from(rows.len()).unwrap_or(i64::MAX))
                .bind(a.total_weight.to_string())
                .bind(now.unix())
                .bind(l.id)
                .execute(&mut *tx)
                .await?;
                tracing::warn!(
                    chain = c,
                    loss = %l.key,
                    amount = %l.amount,
                    users = rows.len(),
                    users_part = %a.users,
                    platform_part = %a.platform,
                    "loss allocated to the users who held (losses = \"users\")"
                );
                done += 1;
            }
            tx.commit().await?;
        });
        Ok(done)
    }

    /// Whether a loss of the chain waits for allocation (no distribution
    /// of the chain runs then).
    pub async fn loss_pending(&self, chain: ChainId) -> Result<bool, StoreError> {
        let n: i64 = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM pool_losses WHERE chain = $1 AND rule = 'users' AND allocated_at IS NULL")
                .bind(chain.as_str())
                .fetch_one(pool)
                .await?
        });
        Ok(n > 0)
    }

    /// The chain's losses under the `users` rule, as the books count them
    /// at `now`.
    pub async fn users_losses(
        &self,
        chain: ChainId,
        now: Timestamp,
    ) -> Result<UsersLosses, StoreError> {
        let c = chain.as_str();
        let losses: Vec<UsersLossRow> = on_pool!(self, pool => {
            sqlx::query_as("SELECT id, amount, platform_part, users_part, net_until FROM pool_losses WHERE chain = $1 AND rule = 'users'")
                .bind(c)
                .fetch_all(pool)
                .await?
        });
        let mut out = UsersLosses::default();
        let add = |a: Amount, b: Amount| a.checked_add(b).ok_or_else(overflow);
        for (id, amount, platform, users, until) in losses {
            let amount = parse_amount("pool_losses.amount", &amount)?;
            out.booked = add(out.booked, amount)?;
            let (Some(p), Some(u)) = (platform, users) else {
                // Not allocated yet: nobody else bears it yet.
                out.platform = add(out.platform, amount)?;
                continue;
            };
            out.platform = add(out.platform, parse_amount("pool_losses.platform_part", &p)?)?;
            out.allocated = add(out.allocated, parse_amount("pool_losses.users_part", &u)?)?;
            // Only the shares still open are read (a partial index): netted
            // history is never scanned again.
            let open: Vec<String> = on_pool!(self, pool => {
                sqlx::query_scalar("SELECT remaining FROM loss_allocations WHERE loss_id = $1 AND remaining <> '0'")
                    .bind(id)
                    .fetch_all(pool)
                    .await?
            });
            let open = crate::sum_amounts("loss_allocations.remaining", &open)?;
            if until <= now.unix() {
                out.written_off = add(out.written_off, open)?;
            } else {
                out.receivable = add(out.receivable, open)?;
            }
        }
        out.netted = out
            .allocated
            .checked_sub(out.receivable)
            .and_then(|v| v.checked_sub(out.written_off))
            .ok_or_else(|| {
                StoreError::Corrupt("loss shares open above what was allocated".into())
            })?;
        out.platform = add(out.platform, out.written_off)?;
        Ok(out)
    }

    /// A user's shares of losses whose period ended in `[from, to)`.
    pub async fn loss_shares(
        &self,
        user_id: &str,
        from: Timestamp,
        to: Timestamp,
        now: Timestamp,
    ) -> Result<Vec<LossShareLine>, StoreError> {
        let rows: Vec<ShareRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT l.chain, l.loss_key, l.kind, l.period_start, l.period_end, l.net_until, a.amount, a.remaining \
                 FROM loss_allocations a JOIN pool_losses l ON l.id = a.loss_id \
                 WHERE a.user_id = $1 AND l.period_end >= $2 AND l.period_end < $3 ORDER BY l.period_end, l.id",
            )
            .bind(user_id)
            .bind(from.unix())
            .bind(to.unix())
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(chain, key, kind, s, e, until, amount, remaining)| {
                let chain: ChainId = chain
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("pool_losses.chain: {e}")))?;
                let amount = parse_amount("loss_allocations.amount", &amount)?;
                let remaining = parse_amount("loss_allocations.remaining", &remaining)?;
                let written_off = until <= now.unix();
                Ok(LossShareLine {
                    chain,
                    asset: chain.asset().to_owned(),
                    loss_key: key,
                    kind,
                    period_start: Timestamp::from_unix(s),
                    period_end: Timestamp::from_unix(e),
                    amount,
                    amount_display: amount.format_units(chain.decimals()),
                    netted: amount.checked_sub(remaining).ok_or_else(|| {
                        StoreError::Corrupt("loss_allocations.remaining above amount".into())
                    })?,
                    remaining: if written_off { Amount::ZERO } else { remaining },
                    written_off,
                    net_until: Timestamp::from_unix(until),
                })
            })
            .collect()
    }
}
