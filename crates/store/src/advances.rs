//! The treasury's advance line: withdrawals that never wait.
//!
//! Soft staking promises "withdraw any time", but the pool keeps only a
//! buffer liquid; the rest is staked and takes the chain's unbonding time
//! to come back. Each chain may have an advance line (`buffer.advance_limit`
//! in config): the most the platform's treasury stands ready to front. A
//! withdrawal the unreserved buffer cannot cover is granted at once when
//! the line has room for the shortfall ([`crate::Store::request_withdrawal`],
//! source `advance`): the exchange pays the user, the treasury fronting the
//! shortfall, and an advance is recorded against the request. Only what the
//! line cannot cover queues (FIFO, with an ETA), and a queued request is
//! granted from the line as soon as it has room again.
//!
//! An advance is the treasury's money, owed back by the pool: principal,
//! never income and never users' money. Until repaid it counts in what the
//! pool owes ([`crate::Store::withdrawals_owed`], the planner's reserve), so
//! the planner unstakes for it as it does for queued withdrawals. When the
//! pool's liquidity covers it and no user waits, the liquidity is set aside
//! (`outstanding -> due`, [`crate::Store::promote_withdrawals`]); the
//! exchange moves it from the custody account to the treasury and reports
//! the transfer ([`crate::Store::repay_advance`]), which softstake declares
//! as a principal outflow, so the books take it as principal, not as an
//! incident (`due -> repaid`).

use crate::books::{Declaration, Direction, Purpose};
use crate::{StoreError, on_pool, parse_amount};
use serde::Serialize;
use softstake_core::{Amount, ChainId, Timestamp};

/// One advance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Advance {
    /// Id.
    pub id: i64,
    /// The withdrawal it paid for.
    pub request_id: String,
    /// What the treasury fronted (base units).
    pub amount: Amount,
    /// `outstanding` (liquidity not yet there), `due` (set aside, to be
    /// moved back to the treasury) or `repaid`.
    pub status: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// When the pool should be able to repay it: the completion of the
    /// unbonding in flight that covers it and the advances before it, or
    /// a fresh unbonding's delay (at the time it was made).
    pub expected_at: Timestamp,
    /// When liquidity was set aside for it.
    pub due_at: Option<Timestamp>,
    /// When its repayment was reported.
    pub repaid_at: Option<Timestamp>,
    /// The repayment transfer.
    pub repay_tx_id: Option<String>,
}

/// A chain's advance line at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdvanceLine {
    /// Fronted and not repaid (`outstanding` + `due`).
    pub outstanding: Amount,
    /// Of which set aside for repayment (`due`).
    pub due: Amount,
    /// Advances not repaid whose expected repayment time has passed.
    pub late: u64,
    /// Every advance, newest first (at most the requested number).
    pub advances: Vec<Advance>,
}

/// Open withdrawals as read for [`Claims::of`]: status, amount, the
/// amount of the advance for it.
pub(crate) type OpenRow = (String, String, Option<String>);
/// Advances not repaid as read for [`Claims::of`]: status, amount.
pub(crate) type AdvanceClaim = (String, String);

/// What open withdrawals and advances claim of a chain's liquidity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Claims {
    /// Set aside now: granted withdrawals less what the treasury fronted
    /// for them, and advances `due`.
    pub reserved: Amount,
    /// Of which advances `due`.
    pub due: Amount,
    /// Queued withdrawals.
    pub queued: Amount,
    /// Advances not repaid.
    pub advanced: Amount,
}

impl Claims {
    /// From open withdrawals (`status`, `amount`, the advance for it) and
    /// advances not repaid (`status`, `amount`).
    pub(crate) fn of(open: &[OpenRow], advances: &[AdvanceClaim]) -> Result<Claims, StoreError> {
        let over = || StoreError::Corrupt("withdrawals overflow".into());
        let mut c = Claims::default();
        for (status, amount, advanced) in open {
            let a = parse_amount("withdrawals.amount", amount)?;
            if status == "granted" {
                let fronted = match advanced {
                    Some(x) => parse_amount("advances.amount", x)?,
                    None => Amount::ZERO,
                };
                c.reserved = c
                    .reserved
                    .checked_add(a.saturating_sub(fronted))
                    .ok_or_else(over)?;
            } else {
                c.queued = c.queued.checked_add(a).ok_or_else(over)?;
            }
        }
        for (status, amount) in advances {
            let a = parse_amount("advances.amount", amount)?;
            c.advanced = c.advanced.checked_add(a).ok_or_else(over)?;
            if status == "due" {
                c.reserved = c.reserved.checked_add(a).ok_or_else(over)?;
                c.due = c.due.checked_add(a).ok_or_else(over)?;
            }
        }
        Ok(c)
    }

    /// What the pool owes out of liquidity: queued, granted less fronted,
    /// and every advance not repaid.
    pub(crate) fn owed(&self) -> Result<Amount, StoreError> {
        // `reserved` and `advanced` both count the due advances.
        let granted = self.reserved.saturating_sub(self.due);
        Amount::checked_sum([self.queued, granted, self.advanced])
            .ok_or_else(|| StoreError::Corrupt("withdrawals overflow".into()))
    }
}

type AdvanceRow = (
    i64,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

fn advance(r: AdvanceRow) -> Result<Advance, StoreError> {
    let (id, request_id, amount, status, created, expected, due, repaid, tx) = r;
    Ok(Advance {
        id,
        request_id,
        amount: parse_amount("advances.amount", &amount)?,
        status,
        created_at: Timestamp::from_unix(created),
        expected_at: Timestamp::from_unix(expected),
        due_at: due.map(Timestamp::from_unix),
        repaid_at: repaid.map(Timestamp::from_unix),
        repay_tx_id: tx,
    })
}

macro_rules! columns {
    () => {
        "id, request_id, amount, status, created_at, expected_at, due_at, repaid_at, repay_tx_id"
    };
}

impl crate::Store {
    /// A chain's advance line: totals, late repayments at `now`, and the
    /// newest `limit` advances.
    pub async fn advance_line(
        &self,
        chain: ChainId,
        limit: u32,
        now: Timestamp,
    ) -> Result<AdvanceLine, StoreError> {
        let asset = chain.asset();
        let (open, recent): (Vec<AdvanceRow>, Vec<AdvanceRow>) = on_pool!(self, pool => {
            let open = sqlx::query_as(concat!(
                "SELECT ", columns!(), " FROM advances WHERE asset = $1 AND status IN ('outstanding', 'due') ORDER BY id"
            ))
            .bind(asset)
            .fetch_all(pool)
            .await?;
            let recent = sqlx::query_as(concat!(
                "SELECT ", columns!(), " FROM advances WHERE asset = $1 ORDER BY id DESC LIMIT $2"
            ))
            .bind(asset)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            (open, recent)
        });
        let mut line = AdvanceLine {
            outstanding: Amount::ZERO,
            due: Amount::ZERO,
            late: 0,
            advances: Vec::new(),
        };
        let over = || StoreError::Corrupt("advances overflow".into());
        for r in open {
            let a = advance(r)?;
            line.outstanding = line.outstanding.checked_add(a.amount).ok_or_else(over)?;
            if a.status == "due" {
                line.due = line.due.checked_add(a.amount).ok_or_else(over)?;
            }
            if a.expected_at < now {
                line.late += 1;
            }
        }
        line.advances = recent.into_iter().map(advance).collect::<Result<_, _>>()?;
        Ok(line)
    }

    /// Records that the exchange moved a `due` advance back to the
    /// treasury in transaction `tx_id`, and declares that transfer as a
    /// principal outflow (the books then take it as principal). The same
    /// report again is a replay; an advance not yet due, another chain's,
    /// or one repaid by another transaction is refused and nothing changes.
    pub async fn repay_advance(
        &self,
        chain: ChainId,
        id: i64,
        tx_id: &str,
        now: Timestamp,
    ) -> Result<Advance, StoreError> {
        let tx_id = tx_id.trim();
        if tx_id.is_empty() || tx_id.len() > 256 {
            return Err(StoreError::Invalid(
                "tx_id must be 1 to 256 characters".into(),
            ));
        }
        let asset = chain.asset();
        let row: AdvanceRow = on_pool!(self, pool => {
            let mut tx = crate::BeginWrite::begin_write(pool).await?;
            crate::fence::FenceCheck::check_fence(&mut tx, self.fence.as_ref()).await?;
            <Self as crate::AssetLock<_>>::lock(&mut tx, chain).await?;
            let found: Option<(String, AdvanceRow)> = sqlx::query_as::<_, (String, i64, String, String, String, i64, i64, Option<i64>, Option<i64>, Option<String>)>(concat!(
                "SELECT asset, ", columns!(), " FROM advances WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|(a, i, r, m, s, c, e, d, p, t)| (a, (i, r, m, s, c, e, d, p, t)));
            let Some((a, row)) = found else {
                return Err(StoreError::Invalid(format!("no advance {id}")));
            };
            if a != asset {
                return Err(StoreError::Invalid(format!("advance {id} is not {asset}'s")));
            }
            // A replay declares again (idempotent): a crash between this
            // commit and the declaration loses nothing.
            let replay = row.3 == "repaid" && row.8.as_deref() == Some(tx_id);
            match row.3.as_str() {
                "due" => {}
                "repaid" if replay => {}
                "repaid" => {
                    return Err(StoreError::Invalid(format!(
                        "advance {id} was repaid by another transaction ({})",
                        row.8.as_deref().unwrap_or("")
                    )));
                }
                _ => {
                    return Err(StoreError::Invalid(format!(
                        "advance {id} is not due: the pool's liquidity does not cover it yet (expected {})",
                        Timestamp::from_unix(row.5)
                    )));
                }
            }
            if replay {
                tx.commit().await?;
                row
            } else {
                sqlx::query("UPDATE advances SET status = 'repaid', repaid_at = $1, repay_tx_id = $2 WHERE id = $3")
                    .bind(now.unix())
                    .bind(tx_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                let (i, r, m, _, c, e, d, _, _) = row;
                (i, r, m, "repaid".to_owned(), c, e, d, Some(now.unix()), Some(tx_id.to_owned()))
            }
        });
        let a = advance(row)?;
        self.declare_transfer(
            &Declaration {
                chain,
                tx_id: tx_id.to_owned(),
                direction: Direction::Out,
                amount: a.amount,
                purpose: Purpose::Principal,
                note: Some(format!(
                    "repayment of treasury advance {} (withdrawal {})",
                    a.id, a.request_id
                )),
            },
            now,
        )
        .await?;
        Ok(a)
    }
}
