//! The credit outbox the exchange pulls, and per-user statements.
//!
//! Outbox semantics: credits are read in id order after a cursor (the last
//! id the exchange has seen); the credit id is stable, so the exchange
//! applies each credit exactly once by id, then acknowledges it. Only leader
//! daemons write credits, one distribution per transaction, so ids become
//! visible in order. Zero-amount rows (only a carried remainder changed)
//! are never published.

use crate::{StoreError, on_pool, parse_amount};
use serde::Serialize;
use softstake_core::{Amount, ChainId, Timestamp};
use softstake_ledger::{U256, U512};

/// Most credits returned per page.
pub const MAX_PAGE: u32 = 10_000;

/// One credit for the exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxCredit {
    /// Stable credit id (also the cursor).
    pub id: i64,
    /// User.
    pub user_id: String,
    /// Asset.
    pub asset: String,
    /// Amount in base units.
    pub amount: Amount,
    /// Distribution.
    pub distribution_id: i64,
    /// Reward period start.
    pub period_start: Timestamp,
    /// Reward period end.
    pub period_end: Timestamp,
    /// Whether the exchange acknowledged it.
    pub acked: bool,
}

/// One line of a user's reward statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatementLine {
    /// Credit id.
    pub credit_id: i64,
    /// When the distribution was made.
    pub credited_at: Timestamp,
    /// Chain.
    pub chain: ChainId,
    /// Asset.
    pub asset: String,
    /// Base units.
    pub amount: Amount,
    /// Display units (`"0.0015"`).
    pub amount_display: String,
    /// Reward period start.
    pub period_start: Timestamp,
    /// Reward period end.
    pub period_end: Timestamp,
    /// Validator / pool / baker.
    pub validator: String,
    /// Reward kind.
    pub kind: String,
    /// Simple annualised rate of this credit on the user's average balance
    /// over the period (amount / average balance x year / period), as a
    /// decimal fraction with 6 places (`"0.041234"` = 4.1234%).
    pub apy: String,
    /// The distribution this credit belongs to (`softstake distributions
    /// verify ID` recomputes it).
    pub distribution_id: i64,
    /// The fraction of a base unit carried to the user's next credit after
    /// this one (`"0.5"`): credits are whole base units, the rest is never
    /// lost.
    pub carried_base_units: String,
}

const YEAR_SECS: u64 = 31_557_600;

type OutboxRow = (i64, String, String, String, i64, i64, i64, Option<i64>);
type StatementRow = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    i64,
    i64,
    String,
    String,
    i64,
    String,
);

fn apy(amount: Amount, weight: U256) -> String {
    if weight.is_zero() {
        return "0".into();
    }
    // amount / (weight / secs) * (YEAR / secs) == amount * YEAR / weight
    let micro = (U512::from(amount.base()) * U512::from(YEAR_SECS) * U512::from(1_000_000u64))
        / U512::from(weight);
    let v = u128::try_from(micro).unwrap_or(u128::MAX);
    Amount::from_base(v).format_units(6)
}

impl crate::Store {
    /// Credits with id greater than `after`, oldest first, at most `limit`.
    pub async fn outbox(&self, after: i64, limit: u32) -> Result<Vec<OutboxCredit>, StoreError> {
        let limit = i64::from(limit.clamp(1, MAX_PAGE));
        let rows: Vec<OutboxRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT c.id, c.user_id, c.asset, c.amount, c.distribution_id, r.period_start, r.period_end, c.acked_at \
                 FROM credits c JOIN distributions d ON d.id = c.distribution_id JOIN rewards r ON r.id = d.reward_id \
                 WHERE c.id > $1 AND c.amount <> '0' ORDER BY c.id LIMIT $2",
            )
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(
                |(id, user_id, asset, amount, distribution_id, s, e, acked)| {
                    Ok(OutboxCredit {
                        id,
                        user_id,
                        asset,
                        amount: parse_amount("credits.amount", &amount)?,
                        distribution_id,
                        period_start: Timestamp::from_unix(s),
                        period_end: Timestamp::from_unix(e),
                        acked: acked.is_some(),
                    })
                },
            )
            .collect()
    }

    /// Acknowledges credits. All ids must be published credits, or nothing
    /// is acknowledged. Acknowledging twice is a no-op. Returns how many were
    /// newly acknowledged.
    pub async fn ack_credits(&self, ids: &[i64], now: Timestamp) -> Result<u64, StoreError> {
        if ids.len() > MAX_PAGE as usize {
            return Err(StoreError::Invalid(format!(
                "at most {MAX_PAGE} ids per acknowledgement"
            )));
        }
        if ids.is_empty() {
            return Ok(0);
        }
        let list = (1..=ids.len())
            .map(|i| format!("${}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let count_sql = format!(
            "SELECT COUNT(*) FROM credits WHERE amount <> '0' AND id IN ({list}) AND $1 = $1"
        );
        let upd_sql =
            format!("UPDATE credits SET acked_at = $1 WHERE acked_at IS NULL AND id IN ({list})");
        let mut unique = ids.to_vec();
        unique.sort_unstable();
        unique.dedup();
        on_pool!(self, pool => {
            let mut tx = crate::BeginWrite::begin_write(pool).await?;
            crate::fence::FenceCheck::check_fence(&mut tx, self.fence.as_ref()).await?;
            let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count_sql)).bind(now.unix());
            for id in ids {
                q = q.bind(*id);
            }
            let found = q.fetch_one(&mut *tx).await?;
            if usize::try_from(found).unwrap_or(0) != unique.len() {
                return Err(StoreError::Invalid(format!(
                    "{} of {} credit ids are unknown; nothing was acknowledged",
                    unique.len() - usize::try_from(found).unwrap_or(0),
                    unique.len()
                )));
            }
            let mut q = sqlx::query(sqlx::AssertSqlSafe(upd_sql)).bind(now.unix());
            for id in ids {
                q = q.bind(*id);
            }
            let n = q.execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok(n)
        })
    }

    /// A user's credits whose reward period ended in `[from, to)`.
    pub async fn statement(
        &self,
        user_id: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<StatementLine>, StoreError> {
        let rows: Vec<StatementRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT c.id, d.created_at, r.chain, c.asset, c.amount, c.weight, r.period_start, r.period_end, r.validator, r.kind, c.distribution_id, c.carry_after \
                 FROM credits c JOIN distributions d ON d.id = c.distribution_id JOIN rewards r ON r.id = d.reward_id \
                 WHERE c.user_id = $1 AND c.amount <> '0' AND r.period_end >= $2 AND r.period_end < $3 ORDER BY r.period_end, c.id",
            )
            .bind(user_id)
            .bind(from.unix())
            .bind(to.unix())
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(
                |(id, at, chain, asset, amount, weight, s, e, validator, kind, dist, carry)| {
                    let chain: ChainId = chain
                        .parse()
                        .map_err(|e| StoreError::Corrupt(format!("rewards.chain: {e}")))?;
                    let amount = parse_amount("credits.amount", &amount)?;
                    let weight = U256::from_str_radix(&weight, 10)
                        .map_err(|e| StoreError::Corrupt(format!("credits.weight: {e}")))?;
                    Ok(StatementLine {
                        credit_id: id,
                        credited_at: Timestamp::from_unix(at),
                        chain,
                        asset,
                        amount,
                        amount_display: amount.format_units(chain.decimals()),
                        period_start: Timestamp::from_unix(s),
                        period_end: Timestamp::from_unix(e),
                        validator,
                        kind,
                        apy: apy(amount, weight),
                        distribution_id: dist,
                        carried_base_units: parse_amount("credits.carry_after", &carry)?
                            .format_units(18),
                    })
                },
            )
            .collect()
    }
}

/// A statement as CSV (header line first), the same for the CLI and the API.
pub fn statement_csv(lines: &[StatementLine]) -> String {
    let mut out = String::from(
        "credited_at,chain,asset,amount,amount_base_units,period_start,period_end,validator,kind,apy,distribution_id,carried_base_units\n",
    );
    for l in lines {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{}\n",
            l.credited_at,
            l.chain,
            l.asset,
            l.amount_display,
            l.amount,
            l.period_start,
            l.period_end,
            csv_field(&l.validator),
            csv_field(&l.kind),
            l.apy,
            l.distribution_id,
            l.carried_base_units
        ));
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}
