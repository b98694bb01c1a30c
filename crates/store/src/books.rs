//! The pool's books: what the custody accounts hold, and why it changed.
//!
//! Each engine cycle books one holdings snapshot ([`Store::book_snapshot`])
//! with the flows the adapter proves since the previous one and the rewards
//! recorded since. In one transaction, per chain, under the asset's lock:
//!
//! - each flow is booked once (`pool_flows`, UNIQUE per chain and key) and
//!   classified: a fee; a transfer matching a declaration (same tx id,
//!   direction and amount) is principal (or the platform's commission);
//!   an undeclared inflow is **suspense** (never distributed until an
//!   operator classifies it); an undeclared outflow is an **incident** (the
//!   chain signs nothing until it is booked);
//! - every reward recorded since (except `reconciled` ones, which the books
//!   make themselves) is income the pool received;
//! - the **residual** `Δ holdings - booked flows` is never dropped: it is
//!   added to the chain's `unrecognized` balance, carried from snapshot to
//!   snapshot. A positive unrecognized balance that persists across two
//!   snapshots is income nobody announced (MEV, tips, a missed reward
//!   event): its persistent part, `min(before, after)`, becomes a reward of
//!   kind `reconciled` over the interval, distributed like any other. A
//!   timing difference (a reward paid between the reward read and the pool
//!   read) shows once and is explained by the next snapshot, so it never
//!   counts twice. Income above the sanity bound (a day of
//!   `max_unannounced_per_day` on the holdings, or more for longer
//!   intervals) is held, with an alert, until an operator confirms it.
//!
//! Only when the adapter proves *every* flow (`complete`) do the books act
//! (recognise income); otherwise they record holdings and residuals.
//! The identity, checked before commit on every snapshot:
//! `total = previous total + booked flows + residual`.

use crate::{StoreError, on_pool, parse_amount};
use serde::{Deserialize, Serialize};
use softstake_core::adapter::{FlowKind, Holdings, LossEvent, PoolFlow};
use softstake_core::{Amount, ChainId, Period, Timestamp};

pub use softstake_core::config::{BooksSettings as BooksPolicy, FeeBearer, LossBearer};

/// One holdings reading to book.
#[derive(Debug, Clone)]
pub struct SnapshotInput<'a> {
    /// Chain.
    pub chain: ChainId,
    /// Chain time of the reading.
    pub as_of: Timestamp,
    /// What the custody accounts hold.
    pub holdings: Holdings,
    /// Flows the adapter reported since its cursor.
    pub flows: &'a [PoolFlow],
    /// Whether those are all the flows.
    pub complete: bool,
    /// The adapter's cursor after them.
    pub flow_cursor: Option<String>,
    /// Losses the observing pool read reported (slashing), each against
    /// a validator: booked as losses, and the validator is marked (no new
    /// stake until an operator clears it; crates/store/src/losses.rs).
    pub losses: &'a [LossEvent],
    /// Whether this cycle's reward collection succeeded before the
    /// holdings were read. Without it a reward already in holdings may not
    /// be recorded yet, so nothing is recognised as income.
    pub rewards_current: bool,
    /// The chain's eligibility minimum: under the `users` loss rule, time
    /// below it bears no share of a loss (as it earns no share of a reward).
    pub min_balance: Amount,
    /// Our time.
    pub now: Timestamp,
}

/// What one interval booked, by account (base units).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booked {
    /// Rewards recorded since the previous snapshot.
    pub rewards: Amount,
    /// Declared inflows (principal).
    pub principal_in: Amount,
    /// Declared outflows (principal).
    pub principal_out: Amount,
    /// Declared commission inflows (the platform paying in).
    pub commission_in: Amount,
    /// Declared commission outflows (the platform taking its commission).
    pub commission_out: Amount,
    /// Undeclared inflows, held in suspense.
    pub suspense: Amount,
    /// Undeclared outflows (incidents).
    pub incident: Amount,
    /// Fees paid.
    pub fees: Amount,
    /// Losses (slashing) reported.
    pub losses: Amount,
    /// Transfers that happened before the books opened (first snapshot).
    pub opening: Amount,
    /// A negative residual that persisted, recognised as a loss this
    /// snapshot (it moves `unrecognized` toward zero, like income the
    /// other way; not a flow).
    #[serde(default)]
    pub loss_recognized: Amount,
    /// Of a positive residual that persisted, what reversed losses
    /// recognised earlier (before anything is income).
    #[serde(default)]
    pub loss_recovered: Amount,
    /// Recognised losses not reversed yet, up to this snapshot.
    #[serde(default)]
    pub recoverable_to_date: Amount,
    /// Every loss booked on the chain up to this snapshot (reported losses
    /// and recognised ones; losses resolved from incidents are counted
    /// from their flows).
    #[serde(default)]
    pub losses_to_date: Amount,
}

impl Booked {
    /// Net change these flows explain (signed).
    fn explained(&self) -> Result<i128, StoreError> {
        let plus = [
            self.rewards,
            self.principal_in,
            self.commission_in,
            self.suspense,
        ];
        let minus = [
            self.principal_out,
            self.commission_out,
            self.incident,
            self.fees,
            self.losses,
        ];
        let mut v: i128 = 0;
        for a in plus {
            v = v.checked_add(signed(a)?).ok_or_else(overflow)?;
        }
        for a in minus {
            v = v.checked_sub(signed(a)?).ok_or_else(overflow)?;
        }
        Ok(v)
    }
}

/// Sums a column of amounts (text) the query streams, in Rust, checked:
/// `(sum, rows)`, holding one row at a time.
macro_rules! stream_sum {
    ($pool:expr, $col:expr, $sql:expr, $bind:expr) => {{
        use futures_util::TryStreamExt;
        let mut rows = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe($sql))
            .bind($bind)
            .fetch($pool);
        let mut total = Amount::ZERO;
        let mut n = 0u64;
        while let Some(v) = rows.try_next().await? {
            total = total
                .checked_add(parse_amount($col, &v)?)
                .ok_or_else(overflow)?;
            n += 1;
        }
        (total, n)
    }};
}

/// Signed amounts go out as decimal text, like every amount (JSON numbers
/// lose precision past 2^53 in most readers).
fn signed_text<S: serde::Serializer>(v: &i128, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.to_string())
}

fn overflow() -> StoreError {
    StoreError::Invalid("the pool's books overflow 127 bits".into())
}

fn signed(a: Amount) -> Result<i128, StoreError> {
    i128::try_from(a.base()).map_err(|_| overflow())
}

fn add(a: Amount, b: Amount) -> Result<Amount, StoreError> {
    a.checked_add(b).ok_or_else(overflow)
}

/// A booked snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// Id (increasing per database).
    pub id: i64,
    /// Chain.
    pub chain: ChainId,
    /// Chain time of the reading.
    pub as_of: Timestamp,
    /// When it was booked.
    pub taken_at: Timestamp,
    /// Whether the adapter proved every flow.
    pub complete: bool,
    /// What the custody accounts held.
    pub holdings: Holdings,
    /// What the books hold (holdings without the unevidenced receivable).
    pub total: Amount,
    /// Flows booked in the interval before it.
    pub booked: Booked,
    /// Change of `total` since the previous snapshot (0 for the first).
    #[serde(serialize_with = "signed_text")]
    pub delta: i128,
    /// `delta - explained`: what no booked flow explains.
    #[serde(serialize_with = "signed_text")]
    pub residual: i128,
    /// Residual carried, not yet recognised (after this snapshot's
    /// recognition).
    #[serde(serialize_with = "signed_text")]
    pub unrecognized: i128,
    /// Unannounced income found but held by the sanity bound.
    pub held: Amount,
    /// The reward of kind `reconciled` made from it, if any.
    pub reconciled_reward_id: Option<i64>,
    /// Its amount (0 when none).
    pub reconciled: Amount,
}

/// A booked flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowRecord {
    /// Id.
    pub id: i64,
    /// Chain.
    pub chain: ChainId,
    /// The flow as the adapter proved it.
    #[serde(flatten)]
    pub flow: PoolFlow,
    /// Snapshot that booked it.
    pub snapshot_id: i64,
    /// principal, suspense, incident, fee or commission.
    pub class: String,
    /// How an operator (or a declaration) resolved a suspense or incident.
    pub resolution: Option<String>,
    /// When.
    pub resolved_at: Option<Timestamp>,
    /// Why.
    pub resolution_note: Option<String>,
    /// The reward made from it (suspense classified as income).
    pub reward_id: Option<i64>,
}

impl FlowRecord {
    /// A suspense or incident nobody resolved yet.
    pub fn is_open(&self) -> bool {
        matches!(self.class.as_str(), "suspense" | "incident") && self.resolved_at.is_none()
    }
}

/// Direction of a declared transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Into the custody accounts.
    In,
    /// Out of them.
    Out,
}

impl Direction {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
    fn kind(self) -> FlowKind {
        match self {
            Direction::In => FlowKind::TransferIn,
            Direction::Out => FlowKind::TransferOut,
        }
    }
}

/// What a declared transfer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Users' money: a top-up for deposits, a payout for withdrawals.
    Principal,
    /// The platform's: commission taken out, or money paid in to cover fees.
    Commission,
}

impl Purpose {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Principal => "principal",
            Purpose::Commission => "commission",
        }
    }
}

/// A transfer the exchange declares it made (or will make).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Declaration {
    /// Chain.
    pub chain: ChainId,
    /// The chain's transaction id.
    pub tx_id: String,
    /// In or out.
    pub direction: Direction,
    /// Amount in base units.
    pub amount: Amount,
    /// What it is for.
    pub purpose: Purpose,
    /// Free text.
    #[serde(default)]
    pub note: Option<String>,
}

/// Outcome of [`Store::declare_transfer`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Declared {
    /// Declaration id.
    pub id: i64,
    /// False when the same declaration was already stored (a replay).
    pub created: bool,
    /// The booked suspense or incident it resolved, if any.
    pub resolved_flow: Option<i64>,
}

/// How an operator resolves an open suspense or incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// Users' money after all (a top-up or payout nobody declared).
    Principal,
    /// Income (suspense only): distributed as a `reconciled` reward.
    Income,
    /// To be sent back (suspense only; the return is an outflow to declare).
    Returned,
    /// Written off (incident only: a theft, a mistaken transfer).
    Loss,
    /// The platform's commission moving.
    Commission,
}

impl Resolution {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Principal => "principal",
            Resolution::Income => "income",
            Resolution::Returned => "returned",
            Resolution::Loss => "loss",
            Resolution::Commission => "commission",
        }
    }

    /// Parses [`Resolution::as_str`].
    pub fn parse(s: &str) -> Option<Resolution> {
        Some(match s {
            "principal" => Resolution::Principal,
            "income" => Resolution::Income,
            "returned" => Resolution::Returned,
            "loss" => Resolution::Loss,
            "commission" => Resolution::Commission,
            _ => return None,
        })
    }
}

/// A chain's books: the latest snapshot, what is open, and backing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Books {
    /// Chain.
    pub chain: ChainId,
    /// The latest snapshot (`None` before the first cycle).
    pub snapshot: Option<Snapshot>,
    /// Open suspense (undeclared inflows): count and sum.
    pub suspense_open: u64,
    /// Their sum.
    pub suspense: Amount,
    /// Open incidents (undeclared outflows): count.
    pub incidents_open: u64,
    /// Their sum.
    pub incidents: Amount,
    /// What is owed, by whom.
    pub owed: Owed,
    /// Holdings the books hold (the latest snapshot's total).
    pub holdings: Amount,
    /// `holdings / owed.total`, six decimals, rounded down (`None` when
    /// nothing is owed).
    pub backing_ratio: Option<String>,
    /// `holdings - owed.total`.
    #[serde(serialize_with = "signed_text")]
    pub surplus: i128,
    /// Bunker mode: whether the chain's distributions wait for a loss to
    /// be accounted (crates/store/src/losses.rs).
    pub bunker: crate::Bunker,
    /// Validators marked by a loss (no new stake until cleared).
    pub marked_validators: Vec<crate::ValidatorMark>,
}

/// What the pool owes (base units).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owed {
    /// Users' liquid balances now.
    pub users: Amount,
    /// Credits published but not acknowledged (not yet in balances).
    pub credits_unacked: Amount,
    /// Users' share of distributed rewards not yet credited: remainders
    /// below a unit, carried into later distributions.
    pub carried: Amount,
    /// Rewards recorded, not yet distributed (gross).
    pub undistributed: Amount,
    /// Withdrawals queued or granted, not yet paid.
    pub withdrawals: Amount,
    /// Undeclared inflows in suspense (someone's money until classified).
    pub suspense: Amount,
    /// The platform's commission: accrued, less fees it bears, less what it
    /// took out, plus what it paid in (negative: the platform owes the pool).
    #[serde(serialize_with = "signed_text")]
    pub commission: i128,
    /// Fees booked so far, and who bore them.
    pub fees: Amount,
    /// `platform` or `pool`.
    pub fee_bearer: &'static str,
    /// Losses booked so far (slashing and penalties the chain reported, a
    /// persistent unexplained fall, undeclared outflows booked as losses).
    pub losses: Amount,
    /// The rule configured now: `platform` (charged to its commission),
    /// `pool` or `users`.
    pub loss_bearer: &'static str,
    /// Losses booked under the `users` rule: allocated, netted, still owed
    /// by users (`receivable`, subtracted from `total`), written off and
    /// borne by the platform.
    pub users_losses: crate::UsersLosses,
    /// What the platform owes the pool: its commission account below zero
    /// (fees and losses it bears beyond what it earned), until it pays in
    /// with a declared `commission` transfer.
    pub shortfall: Amount,
    /// Everything.
    #[serde(serialize_with = "signed_text")]
    pub total: i128,
}

#[derive(sqlx::FromRow)]
struct SnapRow {
    id: i64,
    chain: String,
    as_of: i64,
    taken_at: i64,
    complete: bool,
    liquid: String,
    staked: String,
    unbonding: String,
    withdrawable: String,
    claimable: String,
    total: String,
    booked: String,
    delta: String,
    residual: String,
    unrecognized: String,
    held: String,
    reconciled_reward_id: Option<i64>,
}

const SELECT_SNAPSHOT: &str = "SELECT s.id, s.chain, s.as_of, s.taken_at, s.complete, s.liquid, s.staked, s.unbonding, s.withdrawable, s.claimable, \
     s.total, s.booked, s.delta, s.residual, s.unrecognized, s.held, s.reconciled_reward_id FROM pool_snapshots s";

fn parse_signed(column: &str, s: &str) -> Result<i128, StoreError> {
    s.parse()
        .map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn snapshot_from_row(r: SnapRow, reconciled: Amount) -> Result<Snapshot, StoreError> {
    let chain: ChainId = r
        .chain
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("pool_snapshots.chain: {e}")))?;
    Ok(Snapshot {
        id: r.id,
        chain,
        as_of: Timestamp::from_unix(r.as_of),
        taken_at: Timestamp::from_unix(r.taken_at),
        complete: r.complete,
        holdings: Holdings {
            liquid: parse_amount("pool_snapshots.liquid", &r.liquid)?,
            staked: parse_amount("pool_snapshots.staked", &r.staked)?,
            unbonding: parse_amount("pool_snapshots.unbonding", &r.unbonding)?,
            withdrawable: parse_amount("pool_snapshots.withdrawable", &r.withdrawable)?,
            claimable: parse_amount("pool_snapshots.claimable", &r.claimable)?,
        },
        total: parse_amount("pool_snapshots.total", &r.total)?,
        booked: serde_json::from_str(&r.booked)
            .map_err(|e| StoreError::Corrupt(format!("pool_snapshots.booked: {e}")))?,
        delta: parse_signed("pool_snapshots.delta", &r.delta)?,
        residual: parse_signed("pool_snapshots.residual", &r.residual)?,
        unrecognized: parse_signed("pool_snapshots.unrecognized", &r.unrecognized)?,
        held: parse_amount("pool_snapshots.held", &r.held)?,
        reconciled_reward_id: r.reconciled_reward_id,
        reconciled,
    })
}

type FlowRow = (
    i64,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    i64,
    String,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i64>,
);

const SELECT_FLOW: &str = "SELECT id, chain, flow_key, kind, amount, tx_id, counterparty, at, snapshot_id, class, resolution, resolved_at, resolution_note, reward_id FROM pool_flows";

fn flow_from_row(r: FlowRow) -> Result<FlowRecord, StoreError> {
    Ok(FlowRecord {
        id: r.0,
        chain: r
            .1
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("pool_flows.chain: {e}")))?,
        flow: PoolFlow {
            key: r.2,
            kind: FlowKind::parse(&r.3)
                .ok_or_else(|| StoreError::Corrupt(format!("pool_flows.kind {:?}", r.3)))?,
            amount: parse_amount("pool_flows.amount", &r.4)?,
            tx_id: r.5,
            counterparty: r.6,
            at: Timestamp::from_unix(r.7),
        },
        snapshot_id: r.8,
        class: r.9,
        resolution: r.10,
        resolved_at: r.11.map(Timestamp::from_unix),
        resolution_note: r.12,
        reward_id: r.13,
    })
}

/// The sanity bound for an interval: a day of `rate` on `total`, or as
/// many days as the interval lasted.
fn bound(policy: &BooksPolicy, total: Amount, secs: i64) -> Amount {
    let days = u128::try_from(secs.max(1)).unwrap_or(1).div_ceil(86_400);
    policy
        .max_unannounced_per_day
        .apply_floor(total)
        .checked_mul(days.max(1))
        .unwrap_or(Amount::MAX)
}

/// A flow being resolved: class, resolution, amount, snapshot id, time,
/// kind and the chain's key.
type FlowToResolve = (String, Option<String>, String, i64, i64, String, String);

/// Key of the reward made from a snapshot's recognised residual: its
/// interval in chain time (`reconciled:snapshot:FROM-TO`, Unix seconds),
/// never a row id, which a restored database hands out again.
pub fn reconciled_key(period: &Period) -> String {
    format!(
        "reconciled:snapshot:{}-{}",
        period.start().unix(),
        period.end().unix()
    )
}

/// Key of the reward made from a stranger's transfer booked as income:
/// the chain's own key of the flow (`reconciled:suspense:FLOW_KEY`), the
/// same after any restore.
pub fn suspense_income_key(flow_key: &str) -> String {
    format!("reconciled:suspense:{flow_key}")
}

/// What the reconciled reward's validator column says.
pub const RECONCILED_VALIDATOR: &str = "(pool books)";

impl crate::Store {
    /// The adapter's flow cursor after the chain's latest snapshot.
    pub async fn flow_cursor(&self, chain: ChainId) -> Result<Option<String>, StoreError> {
        let v: Option<Option<String>> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT flow_cursor FROM pool_snapshots WHERE chain = $1 ORDER BY id DESC LIMIT 1")
                .bind(chain.as_str())
                .fetch_optional(pool)
                .await?
        });
        Ok(v.flatten())
    }

    /// Books one holdings reading (module docs). Exactly once per call:
    /// flows are keyed, rewards are marked with the snapshot that booked
    /// them, and everything commits together (or nothing does).
    pub async fn book_snapshot(
        &self,
        input: &SnapshotInput<'_>,
        policy: &BooksPolicy,
    ) -> Result<Snapshot, StoreError> {
        let total = input
            .holdings
            .booked()
            .ok_or_else(|| StoreError::Invalid("holdings overflow".into()))?;
        let chain = input.chain.as_str();
        let id: i64 = on_pool!(self, pool => {
            let mut tx = crate::BeginWrite::begin_write(pool).await?;
            crate::fence::FenceCheck::check_fence(&mut tx, self.fence.as_ref()).await?;
            <Self as crate::AssetLock<_>>::lock(&mut tx, input.chain).await?;
            let prev: Option<(i64, i64, String, String, String)> = sqlx::query_as(
                "SELECT id, as_of, total, unrecognized, booked FROM pool_snapshots WHERE chain = $1 ORDER BY id DESC LIMIT 1",
            )
            .bind(chain)
            .fetch_optional(&mut *tx)
            .await?;
            let (losses_before, recoverable_before) = match &prev {
                Some((.., b)) => {
                    let b = serde_json::from_str::<Booked>(b)
                        .map_err(|e| StoreError::Corrupt(format!("pool_snapshots.booked: {e}")))?;
                    (b.losses_to_date, b.recoverable_to_date)
                }
                None => (Amount::ZERO, Amount::ZERO),
            };
            let prev = prev.map(|(a, b, c, d, _)| (a, b, c, d));
            let h = &input.holdings;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO pool_snapshots (chain, as_of, taken_at, complete, liquid, staked, unbonding, withdrawable, claimable, total, booked, delta, residual, unrecognized, held, flow_cursor) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, '{}', '0', '0', '0', '0', $11) RETURNING id",
            )
            .bind(chain)
            .bind(input.as_of.unix())
            .bind(input.now.unix())
            .bind(input.complete)
            .bind(h.liquid.to_string())
            .bind(h.staked.to_string())
            .bind(h.unbonding.to_string())
            .bind(h.withdrawable.to_string())
            .bind(h.claimable.to_string())
            .bind(total.to_string())
            .bind(&input.flow_cursor)
            .fetch_one(&mut *tx)
            .await?;
            let reported = Amount::checked_sum(input.losses.iter().map(|l| l.amount))
                .ok_or_else(overflow)?;
            let mut booked = Booked {
                losses: reported,
                ..Booked::default()
            };
            // Each validator a loss was reported against is marked, once
            // while its mark is open: no new stake goes to it.
            for l in input.losses {
                let open: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM validator_marks WHERE chain = $1 AND validator = $2 AND cleared_at IS NULL",
                )
                .bind(chain)
                .bind(&l.validator)
                .fetch_optional(&mut *tx)
                .await?;
                if open.is_none() {
                    sqlx::query(
                        "INSERT INTO validator_marks (chain, validator, reason, amount, snapshot_id, marked_at) VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(chain)
                    .bind(&l.validator)
                    .bind(&l.reason)
                    .bind(l.amount.to_string())
                    .bind(id)
                    .bind(input.now.unix())
                    .execute(&mut *tx)
                    .await?;
                }
            }
            // Rewards recorded since: income the pool received.
            let rewards: Vec<String> = sqlx::query_scalar(
                "UPDATE rewards SET booked_snapshot_id = $1 WHERE chain = $2 AND booked_snapshot_id IS NULL \
                 AND voided_at IS NULL AND kind <> 'reconciled' RETURNING amount",
            )
            .bind(id)
            .bind(chain)
            .fetch_all(&mut *tx)
            .await?;
            booked.rewards = crate::sum_amounts("rewards.amount", &rewards)?;
            // Flows, each once.
            for f in input.flows {
                if f.amount.is_zero() || f.key.trim().is_empty() || f.tx_id.trim().is_empty() {
                    return Err(StoreError::Invalid(format!(
                        "flow {:?} on {chain}: a flow needs a key, a tx id and an amount above 0",
                        f.key
                    )));
                }
                let direction = match f.kind {
                    FlowKind::TransferIn => Some("in"),
                    FlowKind::TransferOut => Some("out"),
                    FlowKind::Fee => None,
                };
                let declared: Option<(String, String)> = match direction {
                    Some(d) => sqlx::query_as(
                        "SELECT amount, purpose FROM transfer_declarations WHERE chain = $1 AND tx_id = $2 AND direction = $3",
                    )
                    .bind(chain)
                    .bind(&f.tx_id)
                    .bind(d)
                    .fetch_optional(&mut *tx)
                    .await?,
                    None => None,
                };
                let matches = declared
                    .as_ref()
                    .is_some_and(|(a, _)| *a == f.amount.to_string());
                // A fee is ours when the journal signed its transaction (or
                // the exchange declared it). Otherwise the custody key signed
                // something softstake does not know: used elsewhere, or the
                // database was restored from a backup older than it. The
                // chain may be ahead of the journal: nothing is planned
                // until an operator has looked.
                let foreign_fee = f.kind == FlowKind::Fee && prev.is_some() && {
                    // Any version the journal signed (an earlier one may
                    // be the one included, until reconcile says so).
                    let op: i64 = sqlx::query_scalar(
                        "SELECT (SELECT COUNT(*) FROM operations WHERE chain = $1 AND tx_id = $2) \
                         + (SELECT COUNT(*) FROM operation_attempts WHERE chain = $1 AND tx_id = $2)",
                    )
                    .bind(chain)
                    .bind(&f.tx_id)
                    .fetch_one(&mut *tx)
                    .await?;
                    let declared_tx: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM transfer_declarations WHERE chain = $1 AND tx_id = $2",
                    )
                    .bind(chain)
                    .bind(&f.tx_id)
                    .fetch_one(&mut *tx)
                    .await?;
                    op == 0 && declared_tx == 0
                };
                let purpose = declared.as_ref().map_or("", |(_, p)| p.as_str());
                let class = match (f.kind, prev.is_some(), matches, purpose) {
                    (FlowKind::Fee, ..) if foreign_fee => "incident",
                    (FlowKind::Fee, ..) => "fee",
                    (_, false, ..) => "principal",
                    (_, true, true, "commission") => "commission",
                    (_, true, true, _) => "principal",
                    (FlowKind::TransferIn, true, false, _) => "suspense",
                    (FlowKind::TransferOut, true, false, _) => "incident",
                };
                let inserted: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO pool_flows (chain, flow_key, kind, amount, tx_id, counterparty, at, snapshot_id, class) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (chain, flow_key) DO NOTHING RETURNING id",
                )
                .bind(chain)
                .bind(&f.key)
                .bind(f.kind.as_str())
                .bind(f.amount.to_string())
                .bind(&f.tx_id)
                .bind(&f.counterparty)
                .bind(f.at.unix())
                .bind(id)
                .bind(class)
                .fetch_optional(&mut *tx)
                .await?;
                if inserted.is_none() {
                    continue; // booked by an earlier snapshot: a replay
                }
                let slot = match (prev.is_some(), class, f.kind) {
                    (false, ..) => &mut booked.opening,
                    (_, "fee", _) => &mut booked.fees,
                    (_, "suspense", _) => &mut booked.suspense,
                    (_, "incident", _) => &mut booked.incident,
                    (_, "commission", FlowKind::TransferIn) => &mut booked.commission_in,
                    (_, "commission", _) => &mut booked.commission_out,
                    (_, _, FlowKind::TransferIn) => &mut booked.principal_in,
                    _ => &mut booked.principal_out,
                };
                *slot = add(*slot, f.amount)?;
            }
            // The residual, and what of it is income.
            let (delta, residual, unrecognized, held, reconciled) = match &prev {
                None => (0i128, 0i128, 0i128, Amount::ZERO, None),
                Some((prev_id, prev_as_of, prev_total, prev_unrec)) => {
                    let prev_total = parse_amount("pool_snapshots.total", prev_total)?;
                    let before = parse_signed("pool_snapshots.unrecognized", prev_unrec)?;
                    let delta = signed(total)?.checked_sub(signed(prev_total)?).ok_or_else(overflow)?;
                    let residual = delta.checked_sub(booked.explained()?).ok_or_else(overflow)?;
                    let after = before.checked_add(residual).ok_or_else(overflow)?;
                    let mut held = Amount::ZERO;
                    let mut reconciled = None;
                    let mut unrec = after;
                    // What persisted: the smallest unrecognised balance over
                    // the previous snapshot and those within the settle
                    // window, and now.
                    let since = input.as_of.unix().saturating_sub(i64::try_from(policy.settle_secs).unwrap_or(i64::MAX));
                    let window: Vec<String> = sqlx::query_scalar(
                        "SELECT unrecognized FROM pool_snapshots WHERE chain = $1 AND id < $2 AND as_of >= $3",
                    )
                    .bind(chain)
                    .bind(id)
                    .bind(since)
                    .fetch_all(&mut *tx)
                    .await?;
                    let mut persisted = before.min(after);
                    // A fall persisted: the smallest shortfall over the same span.
                    let mut fallen = before.max(after);
                    for w in &window {
                        let w = parse_signed("pool_snapshots.unrecognized", w)?;
                        persisted = persisted.min(w);
                        fallen = fallen.max(w);
                    }
                    if input.complete && input.rewards_current && fallen < 0 {
                        // Every flow is proven and rewards are current, yet
                        // the holdings stayed below what the books explain:
                        // a loss (slashing, a penalty), borne by the rule.
                        booked.loss_recognized = Amount::from_base(fallen.unsigned_abs());
                        unrec = after - fallen;
                    }
                    let mut x = persisted;
                    if input.complete && input.rewards_current && x > 0 && !recoverable_before.is_zero() {
                        // A rise after a recognised loss first reverses it
                        // (a late reward, a penalty refunded): the platform
                        // is made whole before anything is income.
                        let r = recoverable_before.min(Amount::from_base(x.unsigned_abs()));
                        booked.loss_recovered = r;
                        x -= signed(r)?;
                        unrec = after - signed(r)?;
                    }
                    if input.complete && input.rewards_current && x > 0 {
                        let base_unrec = unrec;
                        let amount = Amount::from_base(u128::try_from(x).map_err(|_| overflow())?);
                        let confirmed: Option<String> = sqlx::query_scalar(
                            "SELECT amount FROM residual_confirmations WHERE snapshot_id = $1",
                        )
                        .bind(prev_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                        let confirmed = confirmed
                            .map(|c| parse_amount("residual_confirmations.amount", &c))
                            .transpose()?
                            .unwrap_or(Amount::ZERO);
                        let limit = bound(policy, prev_total, input.as_of.unix() - prev_as_of)
                            .max(confirmed);
                        let period = Period::new(Timestamp::from_unix(*prev_as_of), input.as_of);
                        let timely = input.as_of.unix()
                            <= input.now.unix().saturating_add(crate::FUTURE_TOLERANCE_SECS);
                        match period {
                            Ok(period) if amount <= limit && timely => {
                                let rid: i64 = sqlx::query_scalar(
                                    "INSERT INTO rewards (chain, reward_key, asset, period_start, period_end, amount, validator, kind, tx_hash, epoch, recorded_at, booked_snapshot_id) \
                                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'reconciled', NULL, NULL, $8, $9) RETURNING id",
                                )
                                .bind(chain)
                                .bind(reconciled_key(&period))
                                .bind(input.chain.asset())
                                .bind(period.start().unix())
                                .bind(period.end().unix())
                                .bind(amount.to_string())
                                .bind(RECONCILED_VALIDATOR)
                                .bind(input.now.unix())
                                .bind(id)
                                .fetch_one(&mut *tx)
                                .await?;
                                reconciled = Some((rid, amount));
                                unrec = base_unrec - x;
                            }
                            Ok(_) if amount > limit => held = amount,
                            // An empty interval or a chain clock ahead of
                            // ours: carried to the next snapshot.
                            _ => {}
                        }
                    }
                    (delta, residual, unrec, held, reconciled)
                }
            };
            // The books' identity, before commit.
            if let Some((_, _, prev_total, _)) = &prev {
                let prev_total = signed(parse_amount("pool_snapshots.total", prev_total)?)?;
                let rhs = prev_total
                    .checked_add(booked.explained()?)
                    .and_then(|v| v.checked_add(residual))
                    .ok_or_else(overflow)?;
                if rhs != signed(total)? {
                    return Err(StoreError::Corrupt(format!(
                        "the books of {chain} do not balance: {prev_total} + {} + {residual} != {total}",
                        booked.explained()?
                    )));
                }
            }
            booked.losses_to_date = losses_before
                .checked_add(booked.losses)
                .and_then(|v| v.checked_add(booked.loss_recognized))
                .and_then(|v| v.checked_sub(booked.loss_recovered))
                .ok_or_else(overflow)?;
            // Under the `users` rule a recognised loss is allocated to the
            // users who held, so a later rise is their income again, not a
            // recovery of the platform's.
            let recoverable = if policy.losses == LossBearer::Users {
                Amount::ZERO
            } else {
                booked.loss_recognized
            };
            booked.recoverable_to_date = recoverable_before
                .checked_add(recoverable)
                .and_then(|v| v.checked_sub(booked.loss_recovered))
                .ok_or_else(overflow)?;
            // Each loss this snapshot booked, with its period and the rule
            // in force (allocated below, after commit, under `users`).
            let prev_as_of = prev.as_ref().map(|p| p.1);
            for (kind, amount) in [("reported", booked.losses), ("recognized", booked.loss_recognized)] {
                if amount.is_zero() {
                    continue;
                }
                let as_of = input.as_of.unix();
                let (start, end) = match (kind, prev_as_of) {
                    ("recognized", Some(p)) => {
                        // The fall began at the earliest snapshot of the run
                        // below zero that ends here: its interval is when
                        // the loss was incurred.
                        let run: Vec<(i64, String)> = sqlx::query_as(
                            "SELECT as_of, unrecognized FROM pool_snapshots WHERE chain = $1 AND id < $2 ORDER BY id DESC LIMIT 10000",
                        )
                        .bind(chain)
                        .bind(id)
                        .fetch_all(&mut *tx)
                        .await?;
                        fall_period(&run).unwrap_or((p, as_of))
                    }
                    (_, Some(p)) => (p, as_of),
                    (_, None) => (as_of.saturating_sub(1), as_of),
                };
                let start = start.min(end.saturating_sub(1));
                let mut key = format!("loss:{kind}:{start}-{end}:{as_of}");
                let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM pool_losses WHERE chain = $1 AND loss_key = $2")
                    .bind(chain)
                    .bind(&key)
                    .fetch_optional(&mut *tx)
                    .await?;
                if taken.is_some() {
                    key = format!("{key}:{id}");
                }
                let users_rule = policy.losses == LossBearer::Users;
                sqlx::query(
                    "INSERT INTO pool_losses (chain, loss_key, kind, rule, amount, period_start, period_end, net_until, commission_first, snapshot_id, booked_at, allocated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(chain)
                .bind(&key)
                .bind(kind)
                .bind(policy.losses.as_str())
                .bind(amount.to_string())
                .bind(start)
                .bind(end)
                .bind(end.saturating_add(i64::try_from(policy.loss_netting_secs).unwrap_or(i64::MAX)))
                .bind(policy.losses_commission_first)
                .bind(id)
                .bind(input.now.unix())
                .bind((!users_rule).then_some(input.now.unix()))
                .execute(&mut *tx)
                .await?;
            }
            let booked_json = serde_json::to_string(&booked)
                .map_err(|e| StoreError::Corrupt(format!("booked: {e}")))?;
            sqlx::query(
                "UPDATE pool_snapshots SET booked = $1, delta = $2, residual = $3, unrecognized = $4, held = $5, reconciled_reward_id = $6 WHERE id = $7",
            )
            .bind(booked_json)
            .bind(delta.to_string())
            .bind(residual.to_string())
            .bind(unrecognized.to_string())
            .bind(held.to_string())
            .bind(reconciled.map(|(r, _)| r))
            .bind(id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            id
        });
        // A loss booked under the `users` rule is allocated now (or, after
        // a crash here, by the next snapshot; no distribution of the chain
        // runs while one waits).
        self.allocate_losses(input.chain, policy, input.min_balance, input.now)
            .await?;
        self.snapshot(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("snapshot vanished after commit".into()))
    }

    /// A snapshot by id.
    pub async fn snapshot(&self, id: i64) -> Result<Option<Snapshot>, StoreError> {
        let sql = format!("{SELECT_SNAPSHOT} WHERE s.id = $1");
        let row: Option<SnapRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?
        });
        self.with_reconciled(row).await
    }

    async fn with_reconciled(&self, row: Option<SnapRow>) -> Result<Option<Snapshot>, StoreError> {
        let Some(row) = row else { return Ok(None) };
        let reconciled = match row.reconciled_reward_id {
            Some(rid) => self
                .reward(rid)
                .await?
                .map_or(Amount::ZERO, |r| r.reward.amount),
            None => Amount::ZERO,
        };
        snapshot_from_row(row, reconciled).map(Some)
    }

    /// A chain's snapshots, newest first, ids below `before`, at most `limit`.
    pub async fn snapshots(
        &self,
        chain: ChainId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Snapshot>, StoreError> {
        let sql = format!(
            "{SELECT_SNAPSHOT} WHERE s.chain = $1 AND s.id < $2 ORDER BY s.id DESC LIMIT $3"
        );
        let rows: Vec<SnapRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(chain.as_str())
                .bind(before.unwrap_or(i64::MAX))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            if let Some(s) = self.with_reconciled(Some(r)).await? {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// A chain's booked flows, newest first (only open suspense and
    /// incidents with `open_only`), ids below `before`, at most `limit`.
    pub async fn flows(
        &self,
        chain: ChainId,
        open_only: bool,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<FlowRecord>, StoreError> {
        let sql = format!(
            "{SELECT_FLOW} WHERE chain = $1 AND id < $2 AND (NOT $3 OR (class IN ('suspense', 'incident') AND resolved_at IS NULL)) ORDER BY id DESC LIMIT $4"
        );
        let rows: Vec<FlowRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(chain.as_str())
                .bind(before.unwrap_or(i64::MAX))
                .bind(open_only)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(flow_from_row).collect()
    }

    /// Open incidents (undeclared outflows) of a chain: while there is one,
    /// the chain signs nothing.
    pub async fn open_incidents(&self, chain: ChainId) -> Result<u64, StoreError> {
        let n: i64 = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM pool_flows WHERE chain = $1 AND class = 'incident' AND resolved_at IS NULL")
                .bind(chain.as_str())
                .fetch_one(pool)
                .await?
        });
        Ok(u64::try_from(n).unwrap_or_default())
    }

    /// Declares a transfer the exchange made or will make to or from the
    /// custody accounts. Idempotent: the same declaration again is a
    /// replay; another with the same chain, tx id and direction but other
    /// content is refused. A booked suspense (inflow) or incident
    /// (outflow) with that tx id and amount is resolved by it at once.
    pub async fn declare_transfer(
        &self,
        d: &Declaration,
        now: Timestamp,
    ) -> Result<Declared, StoreError> {
        let tx_id = d.tx_id.trim();
        if tx_id.is_empty() || tx_id.len() > 256 {
            return Err(StoreError::Invalid(
                "tx_id must be 1 to 256 characters".into(),
            ));
        }
        if d.amount.is_zero() {
            return Err(StoreError::Invalid("amount must be above 0".into()));
        }
        if d.note.as_ref().is_some_and(|n| n.len() > 1024) {
            return Err(StoreError::Invalid("note is longer than 1024 bytes".into()));
        }
        let chain = d.chain.as_str();
        let out: Declared = on_pool!(self, pool => {
            let mut tx = crate::BeginWrite::begin_write(pool).await?;
            <Self as crate::AssetLock<_>>::lock(&mut tx, d.chain).await?;
            let inserted: Option<i64> = sqlx::query_scalar(
                "INSERT INTO transfer_declarations (chain, tx_id, direction, amount, purpose, note, declared_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (chain, tx_id, direction) DO NOTHING RETURNING id",
            )
            .bind(chain)
            .bind(tx_id)
            .bind(d.direction.as_str())
            .bind(d.amount.to_string())
            .bind(d.purpose.as_str())
            .bind(&d.note)
            .bind(now.unix())
            .fetch_optional(&mut *tx)
            .await?;
            let (id, created) = match inserted {
                Some(id) => (id, true),
                None => {
                    let (id, amount, purpose, note): (i64, String, String, Option<String>) = sqlx::query_as(
                        "SELECT id, amount, purpose, note FROM transfer_declarations WHERE chain = $1 AND tx_id = $2 AND direction = $3",
                    )
                    .bind(chain)
                    .bind(tx_id)
                    .bind(d.direction.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
                    if amount != d.amount.to_string() || purpose != d.purpose.as_str() || note != d.note {
                        return Err(StoreError::Invalid(format!(
                            "transfer {tx_id:?} ({}) on {chain} was already declared with different content (declaration {id})",
                            d.direction.as_str()
                        )));
                    }
                    (id, false)
                }
            };
            // A flow already booked as suspense or incident, same amount.
            let open: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM pool_flows WHERE chain = $1 AND tx_id = $2 AND kind = $3 AND amount = $4 \
                 AND class IN ('suspense', 'incident') AND resolved_at IS NULL ORDER BY id LIMIT 1",
            )
            .bind(chain)
            .bind(tx_id)
            .bind(d.direction.kind().as_str())
            .bind(d.amount.to_string())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(fid) = open {
                sqlx::query(
                    "UPDATE pool_flows SET resolution = $1, resolved_at = $2, resolution_note = $3 WHERE id = $4",
                )
                .bind(d.purpose.as_str())
                .bind(now.unix())
                .bind(format!("declared (declaration {id})"))
                .bind(fid)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Declared { id, created, resolved_flow: open }
        });
        Ok(out)
    }

    /// Resolves an open suspense (`principal`, `income`, `returned`) or
    /// incident (`principal`, `loss`, `commission`). `income` records a
    /// reward of kind `reconciled` over the interval of the snapshot that
    /// booked the inflow, distributed like any other. Resolving a resolved
    /// flow the same way again is a no-op; another way is refused.
    pub async fn resolve_flow(
        &self,
        chain: ChainId,
        flow_id: i64,
        how: Resolution,
        note: &str,
        now: Timestamp,
    ) -> Result<FlowRecord, StoreError> {
        if note.trim().is_empty() || note.len() > 1024 {
            return Err(StoreError::Invalid(
                "say why (a note of 1 to 1024 bytes)".into(),
            ));
        }
        let c = chain.as_str();
        on_pool!(self, pool => {
            let mut tx = crate::BeginWrite::begin_write(pool).await?;
            crate::fence::FenceCheck::check_fence(&mut tx, self.fence.as_ref()).await?;
            <Self as crate::AssetLock<_>>::lock(&mut tx, chain).await?;
            let row: Option<FlowToResolve> = sqlx::query_as(
                "SELECT class, resolution, amount, snapshot_id, at, kind, flow_key FROM pool_flows WHERE id = $1 AND chain = $2",
            )
            .bind(flow_id)
            .bind(c)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((class, resolution, amount, snapshot_id, at, kind, flow_key)) = row else {
                return Err(StoreError::Invalid(format!("no flow {flow_id} on {c}")));
            };
            if let Some(r) = resolution {
                if r == how.as_str() {
                    tx.commit().await?;
                    return self.flow(flow_id).await?.ok_or_else(|| StoreError::Corrupt("flow vanished".into()));
                }
                return Err(StoreError::Invalid(format!(
                    "flow {flow_id} was already resolved as {r}"
                )));
            }
            let allowed = match class.as_str() {
                "suspense" => matches!(how, Resolution::Principal | Resolution::Income | Resolution::Returned | Resolution::Commission),
                // The fee of a transaction the journal does not know: the
                // coins are gone either way; it is written off as a loss
                // (borne by the loss rule) once an operator has checked what
                // the transaction did.
                "incident" if kind == "fee" => matches!(how, Resolution::Loss),
                "incident" => matches!(how, Resolution::Principal | Resolution::Loss | Resolution::Commission),
                other => {
                    return Err(StoreError::Invalid(format!(
                        "flow {flow_id} is {other}: only a suspense or an incident is resolved"
                    )));
                }
            };
            if !allowed {
                return Err(StoreError::Invalid(if class == "incident" && kind == "fee" {
                    format!(
                        "flow {flow_id} is the fee of a transaction softstake did not sign: it can only be booked as a loss, not {}",
                        how.as_str()
                    )
                } else {
                    format!("a {class} cannot be resolved as {}", how.as_str())
                }));
            }
            let mut reward_id = None;
            if how == Resolution::Income {
                // The second the coins arrived, in chain time: it goes to
                // whoever held then, and the reward (key, period, amount)
                // is the same after any restore or replay.
                let period = Period::new(Timestamp::from_unix(at - 1), Timestamp::from_unix(at))
                    .map_err(|e| StoreError::Corrupt(format!("flow time: {e}")))?;
                crate::rewards::not_from_the_future(period.end(), now)?;
                let rid: i64 = sqlx::query_scalar(
                    "INSERT INTO rewards (chain, reward_key, asset, period_start, period_end, amount, validator, kind, tx_hash, epoch, recorded_at, booked_snapshot_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'reconciled', NULL, NULL, $8, $9) RETURNING id",
                )
                .bind(c)
                .bind(suspense_income_key(&flow_key))
                .bind(chain.asset())
                .bind(period.start().unix())
                .bind(period.end().unix())
                .bind(&amount)
                .bind(RECONCILED_VALIDATOR)
                .bind(now.unix())
                .bind(snapshot_id)
                .fetch_one(&mut *tx)
                .await?;
                reward_id = Some(rid);
            }
            sqlx::query(
                "UPDATE pool_flows SET resolution = $1, resolved_at = $2, resolution_note = $3, reward_id = $4 WHERE id = $5",
            )
            .bind(how.as_str())
            .bind(now.unix())
            .bind(note)
            .bind(reward_id)
            .bind(flow_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        self.flow(flow_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("flow vanished after commit".into()))
    }

    /// A booked flow by id.
    pub async fn flow(&self, id: i64) -> Result<Option<FlowRecord>, StoreError> {
        let sql = format!("{SELECT_FLOW} WHERE id = $1");
        let row: Option<FlowRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?
        });
        row.map(flow_from_row).transpose()
    }

    /// Confirms the income the sanity bound held at the chain's latest
    /// snapshot: the next snapshot recognises up to `amount` of it.
    pub async fn confirm_residual(
        &self,
        chain: ChainId,
        note: &str,
        now: Timestamp,
    ) -> Result<(i64, Amount), StoreError> {
        if note.trim().is_empty() || note.len() > 1024 {
            return Err(StoreError::Invalid(
                "say why the income is right (a note of 1 to 1024 bytes)".into(),
            ));
        }
        let c = chain.as_str();
        on_pool!(self, pool => {
            let mut tx = crate::BeginWrite::begin_write(pool).await?;
            <Self as crate::AssetLock<_>>::lock(&mut tx, chain).await?;
            let latest: Option<(i64, String)> = sqlx::query_as(
                "SELECT id, held FROM pool_snapshots WHERE chain = $1 ORDER BY id DESC LIMIT 1",
            )
            .bind(c)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((id, held)) = latest else {
                return Err(StoreError::Invalid(format!("{c} has no books yet")));
            };
            let held = parse_amount("pool_snapshots.held", &held)?;
            if held.is_zero() {
                return Err(StoreError::Invalid(format!(
                    "{c}'s latest snapshot ({id}) holds no income awaiting confirmation"
                )));
            }
            sqlx::query(
                "INSERT INTO residual_confirmations (snapshot_id, chain, amount, note, confirmed_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (snapshot_id) DO NOTHING",
            )
            .bind(id)
            .bind(c)
            .bind(held.to_string())
            .bind(note)
            .bind(now.unix())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok((id, held))
        })
    }

    /// Of `flows` the chain proves after the stored cursor, those the
    /// ledger cannot explain, without booking anything: fees of
    /// transactions the journal did not sign (nobody declared them either)
    /// and transfers nobody declared. After a restore from a backup these
    /// are what the chains did that the restored ledger does not know.
    pub async fn unknown_activity(
        &self,
        chain: ChainId,
        flows: &[PoolFlow],
    ) -> Result<Vec<PoolFlow>, StoreError> {
        let c = chain.as_str();
        let mut out = Vec::new();
        for f in flows {
            let (booked, journaled, declared): (i64, i64, i64) = on_pool!(self, pool => {
                sqlx::query_as(
                    "SELECT (SELECT COUNT(*) FROM pool_flows WHERE chain = $1 AND flow_key = $2),                             (SELECT COUNT(*) FROM operations WHERE chain = $1 AND tx_id = $3) + (SELECT COUNT(*) FROM operation_attempts WHERE chain = $1 AND tx_id = $3),                             (SELECT COUNT(*) FROM transfer_declarations WHERE chain = $1 AND tx_id = $3 AND ($4 = '' OR direction = $4))",
                )
                .bind(c)
                .bind(&f.key)
                .bind(&f.tx_id)
                .bind(match f.kind {
                    FlowKind::TransferIn => "in",
                    FlowKind::TransferOut => "out",
                    FlowKind::Fee => "",
                })
                .fetch_one(pool)
                .await?
            });
            let known = booked > 0
                || match f.kind {
                    FlowKind::Fee => journaled > 0 || declared > 0,
                    _ => declared > 0,
                };
            if !known {
                out.push(f.clone());
            }
        }
        Ok(out)
    }

    /// A chain's books and backing now.
    pub async fn books(
        &self,
        chain: ChainId,
        policy: &BooksPolicy,
        now: Timestamp,
    ) -> Result<Books, StoreError> {
        let fees = policy.fees;
        let c = chain.as_str();
        let row: Option<SnapRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT_SNAPSHOT} WHERE s.chain = $1 ORDER BY s.id DESC LIMIT 1")))
                .bind(c)
                .fetch_optional(pool)
                .await?
        });
        let snapshot = self.with_reconciled(row).await?;
        let open = |class: &'static str| {
            format!(
                "SELECT amount FROM pool_flows WHERE chain = $1 AND class = '{class}' AND resolved_at IS NULL"
            )
        };
        // Each sum streams its rows (memory stays flat however long the
        // history): SQL never adds money, Rust does, checked.
        let (
            suspense,
            incidents,
            fees_sum,
            comm_in,
            comm_out,
            commission,
            credits_unacked,
            undistributed,
            users_pool,
            credited,
            resolved_losses,
            unacked_netted,
        ) = on_pool!(self, pool => {
            (
                stream_sum!(pool, "pool_flows.amount", open("suspense"), c),
                stream_sum!(pool, "pool_flows.amount", open("incident"), c),
                stream_sum!(pool, "pool_flows.amount", "SELECT amount FROM pool_flows WHERE chain = $1 AND class = 'fee'".to_owned(), c).0,
                stream_sum!(pool, "pool_flows.amount", "SELECT amount FROM pool_flows WHERE chain = $1 AND kind = 'transfer_in' AND (class = 'commission' OR resolution = 'commission')".to_owned(), c).0,
                stream_sum!(pool, "pool_flows.amount", "SELECT amount FROM pool_flows WHERE chain = $1 AND kind = 'transfer_out' AND (class = 'commission' OR resolution = 'commission')".to_owned(), c).0,
                stream_sum!(pool, "distributions.commission", "SELECT d.commission FROM distributions d JOIN rewards r ON r.id = d.reward_id WHERE r.chain = $1".to_owned(), c).0,
                stream_sum!(pool, "credits.amount", "SELECT c.amount FROM credits c JOIN distributions d ON d.id = c.distribution_id JOIN rewards r ON r.id = d.reward_id \
                     WHERE r.chain = $1 AND c.acked_at IS NULL AND c.amount <> '0'".to_owned(), c).0,
                stream_sum!(pool, "rewards.amount", "SELECT r.amount FROM rewards r LEFT JOIN distributions d ON d.reward_id = r.id WHERE r.chain = $1 AND d.id IS NULL AND r.voided_at IS NULL".to_owned(), c).0,
                stream_sum!(pool, "distributions.users_pool", "SELECT d.users_pool FROM distributions d JOIN rewards r ON r.id = d.reward_id WHERE r.chain = $1".to_owned(), c).0,
                stream_sum!(pool, "distributions.credited", "SELECT d.credited FROM distributions d JOIN rewards r ON r.id = d.reward_id WHERE r.chain = $1".to_owned(), c).0,
                stream_sum!(pool, "pool_flows.amount", "SELECT amount FROM pool_flows WHERE chain = $1 AND resolution = 'loss'".to_owned(), c).0,
                stream_sum!(pool, "credits.netted", "SELECT c.netted FROM credits c JOIN distributions d ON d.id = c.distribution_id JOIN rewards r ON r.id = d.reward_id \
                     WHERE r.chain = $1 AND c.acked_at IS NULL AND c.netted <> '0'".to_owned(), c).0,
            )
        });
        let (suspense_sum, suspense_n) = suspense;
        let (incidents_sum, incidents_n) = incidents;
        let mut commission_owed = signed(commission)?
            .checked_add(signed(comm_in)?)
            .ok_or_else(overflow)?
            .checked_sub(signed(comm_out)?)
            .ok_or_else(overflow)?;
        if fees == FeeBearer::Platform {
            commission_owed = commission_owed
                .checked_sub(signed(fees_sum)?)
                .ok_or_else(overflow)?;
        }
        // Losses: reported by the chain, recognised from a persistent
        // fall, or an undeclared outflow an operator booked as a loss.
        let losses = snapshot
            .as_ref()
            .map_or(Amount::ZERO, |s| s.booked.losses_to_date)
            .checked_add(resolved_losses)
            .ok_or_else(overflow)?;
        // Losses booked under `users` are the users' as allocated (what
        // they have not paid yet is their debt to the pool, until its
        // horizon) and the platform's for the rest (loss_rule.rs); every
        // other loss follows the rule configured now, except that under
        // `users` an undeclared outflow booked as a loss is the platform's.
        let users_losses = self.users_losses(chain, now).await?;
        let other = losses.checked_sub(users_losses.booked).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "{chain}: losses under the users rule ({}) exceed every loss booked ({losses})",
                users_losses.booked
            ))
        })?;
        let platform_losses = match policy.losses {
            LossBearer::Platform | LossBearer::Users => other,
            LossBearer::Pool => Amount::ZERO,
        }
        .checked_add(users_losses.platform)
        .ok_or_else(overflow)?;
        commission_owed = commission_owed
            .checked_sub(signed(platform_losses)?)
            .ok_or_else(overflow)?;
        // Credits not acknowledged yet are owed as paid: less what was
        // netted against loss shares.
        let credits_unacked = credits_unacked.checked_sub(unacked_netted).ok_or_else(|| {
            StoreError::Corrupt(format!("{chain}: credits netted above their amounts"))
        })?;
        // What the platform owes the pool (its account below zero).
        let shortfall =
            Amount::from_base(u128::try_from(-commission_owed.min(0)).map_err(|_| overflow())?);
        // The users' share not yet credited (remainders smaller than a
        // unit, carried to later distributions): theirs all the same.
        let carried = users_pool.checked_sub(credited).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "{chain}: distributions credited {credited}, more than their users' pools ({users_pool})"
            ))
        })?;
        let users = self.liabilities(chain.asset(), now).await?;
        let withdrawals = self.withdrawals_owed(chain).await?;
        let mut total = commission_owed;
        for a in [
            users,
            credits_unacked,
            carried,
            undistributed,
            withdrawals,
            suspense_sum,
        ] {
            total = total.checked_add(signed(a)?).ok_or_else(overflow)?;
        }
        // What users owe the pool for loss shares not netted yet.
        total = total
            .checked_sub(signed(users_losses.receivable)?)
            .ok_or_else(overflow)?;
        let holdings = snapshot.as_ref().map_or(Amount::ZERO, |s| s.total);
        let surplus = signed(holdings)?.checked_sub(total).ok_or_else(overflow)?;
        let backing_ratio = (total > 0).then(|| ratio(holdings, total));
        let bunker = self.bunker(chain).await?;
        let marked_validators = self.validator_marks(chain, true).await?;
        Ok(Books {
            bunker,
            marked_validators,
            chain,
            snapshot,
            suspense_open: suspense_n,
            suspense: suspense_sum,
            incidents_open: incidents_n,
            incidents: incidents_sum,
            owed: Owed {
                users,
                credits_unacked,
                carried,
                undistributed,
                withdrawals,
                suspense: suspense_sum,
                commission: commission_owed,
                fees: fees_sum,
                fee_bearer: fees.as_str(),
                losses,
                loss_bearer: policy.losses.as_str(),
                users_losses,
                shortfall,
                total,
            },
            holdings,
            backing_ratio,
            surplus,
        })
    }
}

/// The interval in which a fall began: `run` is the snapshots before the
/// one booking it, newest first, as (as_of, unrecognized). The fall began
/// at the earliest snapshot of the leading run below zero; the interval
/// ends there and starts at the snapshot before it. `None` when the newest
/// is not below zero.
fn fall_period(run: &[(i64, String)]) -> Option<(i64, i64)> {
    let below = |u: &str| u.starts_with('-');
    let n = run.iter().take_while(|(_, u)| below(u)).count();
    let first = run.get(n.checked_sub(1)?)?;
    let before = run.get(n).map_or(first.0.saturating_sub(1), |b| b.0);
    Some((before, first.0))
}

/// `num / den` to six decimals, rounded down, as text (display only).
fn ratio(num: Amount, den: i128) -> String {
    let den = u128::try_from(den).unwrap_or(1).max(1);
    match num.mul_div_floor(1_000_000, den) {
        Some((q, _)) => {
            let q = q.base();
            format!("{}.{:06}", q / 1_000_000, q % 1_000_000)
        }
        None => "overflow".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_round_down_to_six_decimals() {
        assert_eq!(ratio(Amount::from_base(1), 3), "0.333333");
        assert_eq!(ratio(Amount::from_base(2), 3), "0.666666");
        assert_eq!(ratio(Amount::from_base(3), 3), "1.000000");
        assert_eq!(ratio(Amount::from_base(7), 2), "3.500000");
    }

    #[test]
    fn the_bound_is_a_day_of_yield_or_the_interval() {
        let p = BooksPolicy {
            fees: FeeBearer::Platform,
            max_unannounced_per_day: softstake_core::Rate::new(rust_decimal::Decimal::new(1, 3))
                .unwrap(),
            settle_secs: 0,
            ..BooksPolicy::default()
        };
        let t = Amount::from_base(1_000_000);
        assert_eq!(bound(&p, t, 60), Amount::from_base(1_000));
        assert_eq!(bound(&p, t, 86_400), Amount::from_base(1_000));
        assert_eq!(bound(&p, t, 86_401), Amount::from_base(2_000));
        assert_eq!(bound(&p, t, 0), Amount::from_base(1_000));
    }

    #[test]
    fn explained_is_inflows_minus_outflows() {
        let b = Booked {
            rewards: Amount::from_base(10),
            principal_in: Amount::from_base(100),
            suspense: Amount::from_base(5),
            principal_out: Amount::from_base(40),
            fees: Amount::from_base(2),
            incident: Amount::from_base(1),
            losses: Amount::from_base(3),
            commission_out: Amount::from_base(4),
            commission_in: Amount::from_base(6),
            opening: Amount::from_base(1_000),
            // Recognitions and running totals are not flows.
            loss_recognized: Amount::from_base(7),
            loss_recovered: Amount::from_base(2),
            recoverable_to_date: Amount::from_base(5),
            losses_to_date: Amount::from_base(70),
        };
        assert_eq!(
            b.explained().unwrap(),
            10 + 100 + 5 + 6 - 40 - 2 - 1 - 3 - 4
        );
    }
}
