//! The credit outbox the exchange pulls, and per-user statements.
//!
//! Outbox semantics: credits are read in position order after a cursor (the
//! last position the exchange has seen). Each credit has a natural key,
//! [`credit_key`] (chain, reward key, user): the same credit has the same
//! key after any replay or database restore, so the exchange applies each
//! key exactly once, then acknowledges it (by key, or by id). Positions only
//! grow, also across a restore (see `distribution::first_position`), and
//! are assigned under a lock held to commit, so they become visible in
//! order. Ids are row ids: a restore can reuse one for another credit.
//! Zero-amount rows (only a carried remainder changed) are never published.
//! Under the `users` loss rule a credit may be netted against the user's
//! share of a loss (loss_rule.rs): the exchange is paid `amount` (the net),
//! `gross` is the reward's credit and `loss_netted` what was kept.

use crate::{StoreError, on_pool, parse_amount};
use serde::Serialize;
use softstake_core::{Amount, ChainId, Timestamp};
use softstake_ledger::{U256, U512};

/// Most credits returned per page.
pub const MAX_PAGE: u32 = 10_000;

/// One credit for the exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxCredit {
    /// Natural key: apply each key once ([`credit_key`]).
    pub key: String,
    /// Outbox position (the cursor).
    pub position: i64,
    /// Row id (acknowledgeable; not stable across a database restore).
    pub id: i64,
    /// User.
    pub user_id: String,
    /// Asset.
    pub asset: String,
    /// Amount to pay, in base units: the credit less what was netted
    /// against the user's share of a loss (never below zero).
    pub amount: Amount,
    /// The credit before netting.
    pub gross: Amount,
    /// Kept to cover the user's share of a loss (`users` rule).
    pub loss_netted: Amount,
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
    /// Base units credited (the reward's share, before netting).
    pub amount: Amount,
    /// Display units (`"0.0015"`).
    pub amount_display: String,
    /// Of it, kept to cover the user's share of a loss (`users` rule).
    pub loss_netted: Amount,
    /// Paid to the user: `amount - loss_netted`.
    pub paid: Amount,
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

type OutboxRow = (
    i64,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    Option<i64>,
    i64,
    String,
    String,
);

/// A credit's natural key: `CHAIN:N:REWARD_KEY:USER`, where N is the reward
/// key's length in characters (so neither part's colons make two credits
/// look alike). The same for the same reward and user after any replay,
/// recomputation or database restore.
pub fn credit_key(chain: &str, reward_key: &str, user_id: &str) -> String {
    format!(
        "{chain}:{}:{reward_key}:{user_id}",
        reward_key.chars().count()
    )
}

/// The parts of a [`credit_key`]: (chain, reward key, user).
pub fn parse_credit_key(key: &str) -> Option<(&str, &str, &str)> {
    let (chain, rest) = key.split_once(':')?;
    let (n, rest) = rest.split_once(':')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || (n.len() > 1 && n.starts_with('0'))
    {
        return None;
    }
    let n: usize = n.parse().ok()?;
    let end = rest.char_indices().nth(n).map_or(rest.len(), |(i, _)| i);
    if rest[..end].chars().count() != n {
        return None;
    }
    let (reward_key, user) = (&rest[..end], &rest[end..]);
    let user = user.strip_prefix(':')?;
    (!chain.is_empty() && !user.is_empty()).then_some((chain, reward_key, user))
}
type StatementRow = (
    i64,
    i64,
    String,
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
    /// Credits with position greater than `after`, in position order, at
    /// most `limit`.
    pub async fn outbox(&self, after: i64, limit: u32) -> Result<Vec<OutboxCredit>, StoreError> {
        let limit = i64::from(limit.clamp(1, MAX_PAGE));
        let rows: Vec<OutboxRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT c.id, c.user_id, c.asset, c.amount, c.netted, c.distribution_id, r.period_start, r.period_end, c.acked_at, c.position, r.chain, r.reward_key \
                 FROM credits c JOIN distributions d ON d.id = c.distribution_id JOIN rewards r ON r.id = d.reward_id \
                 WHERE c.position > $1 AND c.amount <> '0' ORDER BY c.position LIMIT $2",
            )
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(
                |(
                    id,
                    user_id,
                    asset,
                    amount,
                    netted,
                    distribution_id,
                    s,
                    e,
                    acked,
                    position,
                    chain,
                    reward_key,
                )| {
                    let gross = parse_amount("credits.amount", &amount)?;
                    let loss_netted = parse_amount("credits.netted", &netted)?;
                    Ok(OutboxCredit {
                        key: credit_key(&chain, &reward_key, &user_id),
                        position,
                        id,
                        user_id,
                        asset,
                        amount: gross.checked_sub(loss_netted).ok_or_else(|| {
                            StoreError::Corrupt(format!("credit {id}: netted above its amount"))
                        })?,
                        gross,
                        loss_netted,
                        distribution_id,
                        period_start: Timestamp::from_unix(s),
                        period_end: Timestamp::from_unix(e),
                        acked: acked.is_some(),
                    })
                },
            )
            .collect()
    }

    /// Acknowledges credits by their keys ([`credit_key`]): all must be
    /// published credits, or nothing is acknowledged. Returns how many were
    /// newly acknowledged.
    pub async fn ack_credit_keys(
        &self,
        keys: &[String],
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        if keys.len() > MAX_PAGE as usize {
            return Err(StoreError::Invalid(format!(
                "at most {MAX_PAGE} keys per acknowledgement"
            )));
        }
        // One query per reward (and 1,000 users), not one per key: an
        // acknowledgement usually names many users of few rewards.
        let mut wanted: std::collections::BTreeMap<(&str, &str), Vec<&str>> =
            std::collections::BTreeMap::new();
        let mut malformed = 0usize;
        for k in keys {
            match parse_credit_key(k) {
                Some((chain, reward_key, user)) => {
                    wanted.entry((chain, reward_key)).or_default().push(user)
                }
                None => malformed += 1,
            }
        }
        let mut found: std::collections::HashMap<(&str, &str, String), i64> =
            std::collections::HashMap::with_capacity(keys.len());
        for ((chain, reward_key), users) in &wanted {
            for chunk in users.chunks(1_000) {
                let list = (0..chunk.len())
                    .map(|i| format!("${}", i + 3))
                    .collect::<Vec<_>>()
                    .join(",");
                let sql = format!(
                    "SELECT c.user_id, c.id FROM rewards r JOIN distributions d ON d.reward_id = r.id \
                     JOIN credits c ON c.distribution_id = d.id \
                     WHERE r.chain = $1 AND r.reward_key = $2 AND c.amount <> '0' AND c.user_id IN ({list})"
                );
                let rows: Vec<(String, i64)> = on_pool!(self, pool => {
                    // Only placeholders are interpolated; values are bound.
                    let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                        .persistent(false)
                        .bind(*chain)
                        .bind(*reward_key);
                    for u in chunk {
                        q = q.bind(*u);
                    }
                    q.fetch_all(pool).await?
                });
                for (user, id) in rows {
                    found.insert((*chain, *reward_key, user), id);
                }
            }
        }
        let mut ids = Vec::with_capacity(keys.len());
        let mut unknown = malformed;
        for ((chain, reward_key), users) in &wanted {
            for u in users {
                match found.get(&(*chain, *reward_key, (*u).to_owned())) {
                    Some(id) => ids.push(*id),
                    None => unknown += 1,
                }
            }
        }
        if unknown > 0 {
            return Err(StoreError::Invalid(format!(
                "{unknown} of {} credit keys are unknown; nothing was acknowledged",
                keys.len()
            )));
        }
        self.ack_credits(&ids, now).await
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
            let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count_sql)).persistent(false).bind(now.unix());
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
            let mut q = sqlx::query(sqlx::AssertSqlSafe(upd_sql)).persistent(false).bind(now.unix());
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
                "SELECT c.id, d.created_at, r.chain, c.asset, c.amount, c.netted, c.weight, r.period_start, r.period_end, r.validator, r.kind, c.distribution_id, c.carry_after \
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
                |(
                    id,
                    at,
                    chain,
                    asset,
                    amount,
                    netted,
                    weight,
                    s,
                    e,
                    validator,
                    kind,
                    dist,
                    carry,
                )| {
                    let chain: ChainId = chain
                        .parse()
                        .map_err(|e| StoreError::Corrupt(format!("rewards.chain: {e}")))?;
                    let amount = parse_amount("credits.amount", &amount)?;
                    let loss_netted = parse_amount("credits.netted", &netted)?;
                    let paid = amount.checked_sub(loss_netted).ok_or_else(|| {
                        StoreError::Corrupt(format!("credit {id}: netted above its amount"))
                    })?;
                    let weight = U256::from_str_radix(&weight, 10)
                        .map_err(|e| StoreError::Corrupt(format!("credits.weight: {e}")))?;
                    Ok(StatementLine {
                        credit_id: id,
                        credited_at: Timestamp::from_unix(at),
                        chain,
                        asset,
                        amount,
                        amount_display: amount.format_units(chain.decimals()),
                        loss_netted,
                        paid,
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
        "credited_at,chain,asset,amount,amount_base_units,period_start,period_end,validator,kind,apy,distribution_id,carried_base_units,loss_netted_base_units,paid_base_units\n",
    );
    for l in lines {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
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
            l.carried_base_units,
            l.loss_netted,
            l.paid
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_keys_round_trip_whatever_colons_the_parts_hold() {
        for (c, r, u) in [
            ("cosmos", "claim:ABC", "alice"),
            ("cosmos", "claim", "ABC:alice"),
            ("tezos", "", "bob"),
            ("polkadot", "era:12:é", "ü:1:x"),
        ] {
            let k = credit_key(c, r, u);
            assert_eq!(parse_credit_key(&k), Some((c, r, u)), "{k}");
        }
        assert_ne!(
            credit_key("cosmos", "claim:ABC", "alice"),
            credit_key("cosmos", "claim", "ABC:alice")
        );
        for bad in [
            "",
            "cosmos",
            "cosmos:x:k:u",
            "cosmos:05:claim:u",
            "cosmos:9:claim:u",
            "cosmos:5:claim",
            ":5:claim:u",
            "cosmos:5:claim:",
        ] {
            assert_eq!(parse_credit_key(bad), None, "{bad:?}");
        }
    }
}
