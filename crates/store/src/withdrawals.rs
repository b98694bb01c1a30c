//! Withdrawal liquidity requests from the exchange.
//!
//! Before paying a user out on-chain, the exchange asks for liquidity. A
//! request is *granted* at once when nobody is queued ahead of it and the
//! unreserved buffer covers it (granted, not yet completed requests reserve
//! buffer); otherwise it is *queued*, first in first out, with an ETA: the
//! completion time of the unbonding entry in flight that, with the buffer,
//! covers everything queued up to and including it, or else now plus the
//! chain's unbonding delay (the planner unstakes for the queue).
//! [`crate::Store::promote_withdrawals`] grants queued requests in order as
//! liquidity arrives; `complete_withdrawal` records the payout.

use crate::advances::{AdvanceClaim, OpenRow};
use crate::{StoreError, on_pool, parse_amount};
use serde::{Deserialize, Serialize};
use softstake_core::adapter::UnbondingEntry;
use softstake_core::{Amount, ChainId, Timestamp};

/// A request from the exchange. `request_id` is the idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawalRequest {
    /// Unique id.
    pub request_id: String,
    /// User.
    pub user_id: String,
    /// Chain (the asset is its native one).
    pub chain: ChainId,
    /// Amount in base units.
    pub amount: Amount,
    /// When the exchange took the request (default: now). An exchange
    /// sending its open requests again after a database restore sends the
    /// time each was first taken, so the user's balance is checked as it
    /// stood then and the request keeps its place in the queue. Refused
    /// in the future.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<Timestamp>,
}

/// Liquidity as the chain reports it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Liquidity {
    /// Liquid custody balance (including matured unbonding).
    pub liquid: Amount,
    /// Unbonding in flight.
    pub unbonding: Vec<UnbondingEntry>,
    /// Worst-case seconds from unstaking to withdrawable.
    pub unbonding_delay_secs: u64,
    /// Seconds between two cycles of the chain's loop: the lag before an
    /// unstake is sent, and again before matured funds are withdrawn and
    /// the request granted. Added to ETAs so they are honest.
    pub cycle_secs: u64,
    /// The most the treasury fronts at once (0: no advance line): see
    /// [`crate::advances`].
    pub advance_limit: Amount,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WithdrawalDecision {
    /// Request id.
    pub request_id: String,
    /// `granted`, `queued`, `completed` or `cancelled`.
    pub status: String,
    /// Where the grant came from: `buffer` (the pool's liquid buffer),
    /// `advance` (the treasury's advance line fronted the part the buffer
    /// could not cover) or `queue` (it waited for liquidity). Absent on
    /// requests stored before the advance line existed.
    pub source: Option<String>,
    /// What the treasury fronted for it (base units), if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advanced: Option<Amount>,
    /// When a queued request should be covered.
    pub eta: Option<Timestamp>,
    /// True when this call stored nothing new (a replay).
    pub replay: bool,
}

type Row = (
    String,
    String,
    String,
    String,
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
);

impl crate::Store {
    /// Grants or queues a request (see the module docs). Refuses a zero
    /// amount, an amount above the user's current liquid balance, and a
    /// reused id with other content. Replays return the stored decision.
    pub async fn request_withdrawal(
        &self,
        req: &WithdrawalRequest,
        liq: &Liquidity,
        now: Timestamp,
    ) -> Result<WithdrawalDecision, StoreError> {
        if req.amount.is_zero() {
            return Err(StoreError::Invalid("withdrawal amount is 0".into()));
        }
        if req.request_id.trim().is_empty() || req.user_id.trim().is_empty() {
            return Err(StoreError::Invalid(
                "request_id and user_id must not be empty".into(),
            ));
        }
        let asset = req.chain.asset();
        let at = req.requested_at.unwrap_or(now);
        if at.unix() > now.unix().saturating_add(crate::FUTURE_TOLERANCE_SECS) {
            return Err(StoreError::Invalid(format!(
                "requested_at {at} is in the future (now {now})"
            )));
        }
        on_pool!(self, pool => {
            let mut tx = crate::BeginWrite::begin_write(pool).await?;
            crate::fence::FenceCheck::check_fence(&mut tx, self.fence.as_ref()).await?;
            <Self as crate::AssetLock<_>>::lock(&mut tx, req.chain).await?;
            let existing: Vec<Row> = sqlx::query_as(
                "SELECT w.user_id, w.asset, w.amount, w.status, w.request_id, w.eta, w.source, a.amount \
                 FROM withdrawals w LEFT JOIN advances a ON a.request_id = w.request_id WHERE w.request_id = $1",
            )
            .bind(&req.request_id)
            .fetch_all(&mut *tx)
            .await?;
            if let Some((user, a, amount, status, id, eta, source, advanced)) = existing.into_iter().next() {
                if user != req.user_id || a != asset || amount != req.amount.to_string() {
                    return Err(StoreError::Invalid(format!(
                        "request_id {:?} was already used for another withdrawal",
                        req.request_id
                    )));
                }
                let advanced = advanced.map(|a| parse_amount("advances.amount", &a)).transpose()?;
                return Ok(WithdrawalDecision { request_id: id, status, source, advanced, eta: eta.map(Timestamp::from_unix), replay: true });
            }
            // The balance in effect when the request was taken (an update
            // dated later is not money the user had), less the user's open requests
            // that balance does not reflect yet: the exchange posts a
            // user's reduced balance after a request, so requests made
            // after the balance took effect (a later second) still claim
            // part of it.
            let balance: Vec<(String, i64)> = sqlx::query_as(
                "SELECT balance, effective_at FROM balance_updates WHERE user_id = $1 AND asset = $2 AND effective_at <= $3 ORDER BY effective_at DESC, id DESC LIMIT 1",
            )
            .bind(&req.user_id)
            .bind(asset)
            .bind(at.unix())
            .fetch_all(&mut *tx)
            .await?;
            let (balance, since) = match balance.first() {
                Some((b, at)) => (parse_amount("balance_updates.balance", b)?, *at),
                None => (Amount::ZERO, i64::MIN),
            };
            let mine: Vec<String> = sqlx::query_scalar(
                "SELECT amount FROM withdrawals WHERE user_id = $1 AND asset = $2 AND status IN ('granted', 'queued') AND created_at > $3",
            )
            .bind(&req.user_id)
            .bind(asset)
            .bind(since)
            .fetch_all(&mut *tx)
            .await?;
            let mut claimed = Amount::ZERO;
            for a in &mine {
                claimed = claimed
                    .checked_add(parse_amount("withdrawals.amount", a)?)
                    .ok_or_else(|| StoreError::Corrupt("withdrawals overflow".into()))?;
            }
            let available = balance.saturating_sub(claimed);
            if req.amount > available {
                return Err(StoreError::Invalid(format!(
                    "withdrawal of {} exceeds user {}'s liquid balance of {} {} at {} less {} in open withdrawals ({} available)",
                    req.amount, req.user_id, balance, asset, at, claimed, available
                )));
            }
            let open: Vec<OpenRow> = sqlx::query_as(
                "SELECT w.status, w.amount, a.amount FROM withdrawals w LEFT JOIN advances a ON a.request_id = w.request_id \
                 WHERE w.asset = $1 AND w.status IN ('granted', 'queued')",
            )
            .bind(asset)
            .fetch_all(&mut *tx)
            .await?;
            let advances: Vec<AdvanceClaim> = sqlx::query_as(
                "SELECT status, amount FROM advances WHERE asset = $1 AND status IN ('outstanding', 'due')",
            )
            .bind(asset)
            .fetch_all(&mut *tx)
            .await?;
            let c = crate::advances::Claims::of(&open, &advances)?;
            let free = liq.liquid.saturating_sub(c.reserved);
            let room = liq.advance_limit.saturating_sub(c.advanced);
            let (status, source, advanced, eta) = if c.queued.is_zero() && req.amount <= free {
                ("granted", "buffer", None, None)
            } else if c.queued.is_zero() && req.amount.saturating_sub(free) <= room {
                // The treasury fronts what the buffer cannot cover, now.
                let fronted = req.amount.saturating_sub(free);
                ("granted", "advance", Some(fronted), None)
            } else {
                let need = c.queued
                    .checked_add(req.amount)
                    .ok_or_else(|| StoreError::Invalid("withdrawal amount too large".into()))?;
                ("queued", "queue", None, Some(eta(need, free, liq, now)))
            };
            sqlx::query(
                "INSERT INTO withdrawals (request_id, user_id, asset, amount, status, eta, created_at, updated_at, source) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)",
            )
            .bind(&req.request_id)
            .bind(&req.user_id)
            .bind(asset)
            .bind(req.amount.to_string())
            .bind(status)
            .bind(eta.map(Timestamp::unix))
            .bind(at.unix())
            .bind(source)
            .execute(&mut *tx)
            .await?;
            if let Some(fronted) = advanced {
                // Repaid from what unbonds for the advances before it and
                // this one, in completion order.
                let owed = c.advanced.checked_add(fronted).unwrap_or(Amount::MAX);
                let expected = crate::withdrawals::eta(owed, Amount::ZERO, liq, now);
                sqlx::query(
                    "INSERT INTO advances (asset, request_id, amount, status, created_at, expected_at) \
                     VALUES ($1, $2, $3, 'outstanding', $4, $5)",
                )
                .bind(asset)
                .bind(&req.request_id)
                .bind(fronted.to_string())
                .bind(now.unix())
                .bind(expected.unix())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(WithdrawalDecision {
                request_id: req.request_id.clone(),
                status: status.into(),
                source: Some(source.into()),
                advanced,
                eta,
                replay: false,
            })
        })
    }

    /// Grants queued requests in FIFO order while the unreserved buffer,
    /// with what room the advance line has, covers the oldest; then, when
    /// no one waits, sets liquidity aside to repay outstanding advances,
    /// oldest first (`outstanding -> due`). Users first: an advance is
    /// repaid only from liquidity no queued request can use. Returns the
    /// request ids granted.
    pub async fn promote_withdrawals(
        &self,
        chain: ChainId,
        liquid: Amount,
        advance_limit: Amount,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        let asset = chain.asset();
        on_pool!(self, pool => {
            let mut tx = crate::BeginWrite::begin_write(pool).await?;
            crate::fence::FenceCheck::check_fence(&mut tx, self.fence.as_ref()).await?;
            <Self as crate::AssetLock<_>>::lock(&mut tx, chain).await?;
            let rows: Vec<(i64, String, String, String, Option<String>)> = sqlx::query_as(
                "SELECT w.id, w.request_id, w.status, w.amount, a.amount FROM withdrawals w \
                 LEFT JOIN advances a ON a.request_id = w.request_id \
                 WHERE w.asset = $1 AND w.status IN ('granted', 'queued') ORDER BY w.created_at, w.id",
            )
            .bind(asset)
            .fetch_all(&mut *tx)
            .await?;
            let advances: Vec<(i64, String, String)> = sqlx::query_as(
                "SELECT id, status, amount FROM advances WHERE asset = $1 AND status IN ('outstanding', 'due') ORDER BY id",
            )
            .bind(asset)
            .fetch_all(&mut *tx)
            .await?;
            let open: Vec<OpenRow> =
                rows.iter().map(|(_, _, st, a, adv)| (st.clone(), a.clone(), adv.clone())).collect();
            let adv: Vec<AdvanceClaim> = advances.iter().map(|(_, st, a)| (st.clone(), a.clone())).collect();
            let c = crate::advances::Claims::of(&open, &adv)?;
            let mut free = liquid.saturating_sub(c.reserved);
            let mut room = advance_limit.saturating_sub(c.advanced);
            let mut granted = Vec::new();
            let mut waiting = false;
            for (id, request_id, status, amount, _) in rows {
                if status != "queued" {
                    continue;
                }
                let a = parse_amount("withdrawals.amount", &amount)?;
                let fronted = a.saturating_sub(free);
                if fronted > room {
                    waiting = true;
                    break; // FIFO: nobody jumps the queue.
                }
                free = free.saturating_sub(a);
                let source = if fronted.is_zero() { "queue" } else { "advance" };
                sqlx::query("UPDATE withdrawals SET status = 'granted', eta = NULL, updated_at = $1, source = $2 WHERE id = $3")
                    .bind(now.unix())
                    .bind(source)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                if !fronted.is_zero() {
                    room = room.saturating_sub(fronted);
                    // Liquidity is short now: it comes back with the
                    // unbonding the planner starts for it.
                    sqlx::query(
                        "INSERT INTO advances (asset, request_id, amount, status, created_at, expected_at) \
                         VALUES ($1, $2, $3, 'outstanding', $4, $4)",
                    )
                    .bind(asset)
                    .bind(&request_id)
                    .bind(fronted.to_string())
                    .bind(now.unix())
                    .execute(&mut *tx)
                    .await?;
                }
                granted.push(request_id);
            }
            if !waiting {
                for (id, status, amount) in advances {
                    if status != "outstanding" {
                        continue;
                    }
                    let a = parse_amount("advances.amount", &amount)?;
                    if a > free {
                        break; // Oldest first.
                    }
                    free = free.saturating_sub(a);
                    sqlx::query("UPDATE advances SET status = 'due', due_at = $1 WHERE id = $2")
                        .bind(now.unix())
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            Ok(granted)
        })
    }

    /// `granted -> completed`: the exchange paid the user out. A `queued`
    /// request can be completed too: the exchange paid it another way
    /// (after a database restore: a request the lost database had granted
    /// and the exchange paid, which the restored one still holds queued);
    /// it then no longer waits for liquidity.
    pub async fn complete_withdrawal(
        &self,
        request_id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let n = on_pool!(self, pool => {
            sqlx::query("UPDATE withdrawals SET status = 'completed', updated_at = $1 WHERE request_id = $2 AND status IN ('granted', 'queued')")
                .bind(now.unix())
                .bind(request_id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if n == 1 {
            Ok(())
        } else {
            Err(StoreError::Invalid(format!(
                "withdrawal {request_id:?} is not open (unknown, or already completed or cancelled)"
            )))
        }
    }

    /// The status of a withdrawal request and when it last changed (`None`:
    /// no such request).
    pub async fn withdrawal_status(
        &self,
        request_id: &str,
    ) -> Result<Option<(String, Timestamp)>, StoreError> {
        let row: Option<(String, i64)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT status, updated_at FROM withdrawals WHERE request_id = $1")
                .bind(request_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(s, t)| (s, Timestamp::from_unix(t))))
    }

    /// Every withdrawal requested since `since` (not cancelled), with when
    /// it was requested: the outflow history the buffer is sized from.
    pub async fn withdrawal_history(
        &self,
        chain: ChainId,
        since: Timestamp,
    ) -> Result<Vec<(Timestamp, Amount)>, StoreError> {
        let rows: Vec<(i64, String)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT created_at, amount FROM withdrawals WHERE asset = $1 AND created_at >= $2 AND status <> 'cancelled' ORDER BY created_at",
            )
            .bind(chain.asset())
            .bind(since.unix())
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(t, a)| {
                Ok((
                    Timestamp::from_unix(t),
                    parse_amount("withdrawals.amount", &a)?,
                ))
            })
            .collect()
    }

    /// Sum of queued withdrawals for a chain.
    pub async fn queued_withdrawals(&self, chain: ChainId) -> Result<Amount, StoreError> {
        self.withdrawals_sum(chain, &["queued"]).await
    }

    /// What the pool owes out of its liquidity and must never stake (the
    /// planner's `queued` input): withdrawals queued or granted but not yet
    /// paid out, less what the treasury fronted for them, plus every advance
    /// not yet repaid (the pool repays it from unbonding).
    pub async fn withdrawals_owed(&self, chain: ChainId) -> Result<Amount, StoreError> {
        let asset = chain.asset();
        let (open, advances): (Vec<OpenRow>, Vec<AdvanceClaim>) = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let open = sqlx::query_as(
                "SELECT w.status, w.amount, a.amount FROM withdrawals w LEFT JOIN advances a ON a.request_id = w.request_id \
                 WHERE w.asset = $1 AND w.status IN ('granted', 'queued')",
            )
            .bind(asset)
            .fetch_all(&mut *tx)
            .await?;
            let advances = sqlx::query_as(
                "SELECT status, amount FROM advances WHERE asset = $1 AND status IN ('outstanding', 'due')",
            )
            .bind(asset)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            (open, advances)
        });
        let c = crate::advances::Claims::of(&open, &advances)?;
        c.owed()
    }

    async fn withdrawals_sum(
        &self,
        chain: ChainId,
        statuses: &[&str],
    ) -> Result<Amount, StoreError> {
        let a = statuses.first().copied().unwrap_or("");
        let b = statuses.get(1).copied().unwrap_or(a);
        let rows: Vec<String> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT amount FROM withdrawals WHERE asset = $1 AND status IN ($2, $3)")
                .bind(chain.asset())
                .bind(a)
                .bind(b)
                .fetch_all(pool)
                .await?
        });
        crate::sum_amounts("withdrawals.amount", &rows)
    }
}

/// When `need` (everything queued up to and including a request) is covered:
/// the completion of the unbonding entry in flight that, with the `free`
/// buffer, covers it (in completion order), plus two cycles (withdraw the
/// matured funds, then grant); or, when what is in flight is not enough,
/// now + one cycle (send the unstake) + the unbonding delay + two cycles.
fn eta(need: Amount, free: Amount, liq: &Liquidity, now: Timestamp) -> Timestamp {
    let secs = |s: u64| i64::try_from(s).unwrap_or(i64::MAX);
    let cycle = secs(liq.cycle_secs);
    let mut covered = free;
    let mut entries: Vec<&UnbondingEntry> = liq.unbonding.iter().collect();
    entries.sort_by_key(|e| e.completes_at);
    for e in entries {
        covered = covered.checked_add(e.amount).unwrap_or(Amount::MAX);
        if covered >= need {
            return e.completes_at.max(now).plus_secs(cycle.saturating_mul(2));
        }
    }
    now.plus_secs(secs(liq.unbonding_delay_secs).saturating_add(cycle.saturating_mul(3)))
}
