//! The contract every chain adapter (`chains/*`) implements.
//!
//! Modeled on Hermes' ADR-009 and Hyperlane's provider traits: one method per
//! capability, each taking a request struct and returning a response struct
//! defined here, so no chain SDK type ever crosses this boundary. Errors say
//! whether retrying can help ([`AdapterError::is_retryable`]).
//!
//! Operations follow the journal's life cycle (see ARCHITECTURE.md):
//! [`ChainAdapter::build_and_sign`] produces bytes and a tx id *without*
//! sending anything, the caller journals them, then
//! [`ChainAdapter::broadcast`] sends exactly those bytes, and
//! [`ChainAdapter::lookup`] reconciles after a restart.

use crate::{Amount, ChainId, Period, Timestamp};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// An on-chain validator / pool / baker identifier in the chain's own
/// textual form (a vote account, a valoper address, a pool id, ...).
pub type ValidatorId = String;

/// What one on-chain operation should do. Chain-specific set-up steps
/// (Tezos reveal, Cardano stake key registration, ...) are [`OperationKind::Setup`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OperationKind {
    /// Stake `amount` more with `validator`.
    Delegate {
        /// Target validator.
        validator: ValidatorId,
        /// Amount to stake.
        amount: Amount,
    },
    /// Start unbonding `amount` from `validator`.
    Undelegate {
        /// Source validator.
        validator: ValidatorId,
        /// Amount to unbond.
        amount: Amount,
    },
    /// Move stake between validators without unbonding, where the chain can.
    Redelegate {
        /// Source validator.
        from: ValidatorId,
        /// Target validator.
        to: ValidatorId,
        /// Amount to move.
        amount: Amount,
    },
    /// Claim accrued rewards from these validators (all, if empty).
    ClaimRewards {
        /// Validators to claim from.
        validators: Vec<ValidatorId>,
    },
    /// Withdraw unbonded funds whose delay has passed back to the liquid pool.
    WithdrawUnbonded {
        /// Expected amount (for caps and the journal; the chain decides).
        amount: Amount,
    },
    /// One-time chain set-up (reveal, stake key registration, payee, ...).
    Setup {
        /// Chain-defined name of the step.
        step: String,
    },
}

impl OperationKind {
    /// Stable short name for logs, metrics labels and the database.
    pub fn name(&self) -> &'static str {
        match self {
            OperationKind::Delegate { .. } => "delegate",
            OperationKind::Undelegate { .. } => "undelegate",
            OperationKind::Redelegate { .. } => "redelegate",
            OperationKind::ClaimRewards { .. } => "claim_rewards",
            OperationKind::WithdrawUnbonded { .. } => "withdraw_unbonded",
            OperationKind::Setup { .. } => "setup",
        }
    }

    /// The value this operation moves, for per-operation and daily caps.
    pub fn value_moved(&self) -> Amount {
        match self {
            OperationKind::Delegate { amount, .. }
            | OperationKind::Undelegate { amount, .. }
            | OperationKind::Redelegate { amount, .. }
            | OperationKind::WithdrawUnbonded { amount } => *amount,
            OperationKind::ClaimRewards { .. } | OperationKind::Setup { .. } => Amount::ZERO,
        }
    }
}

/// Request for [`ChainAdapter::pool_state`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStateRequest {
    /// Only the engine's cycle sets this: the adapter then reports the
    /// losses it sees since the previous observing read and moves its
    /// baselines. Any other read (a withdrawal request through the API, a
    /// `softstake plan`) consumes and moves nothing, so it cannot make a
    /// loss vanish.
    #[serde(default)]
    pub observe: bool,
}

impl PoolStateRequest {
    /// The engine cycle's read (see [`PoolStateRequest::observe`]).
    pub fn observing() -> PoolStateRequest {
        PoolStateRequest { observe: true }
    }
}

/// Stake with one validator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegation {
    /// Validator.
    pub validator: ValidatorId,
    /// Amount currently earning.
    pub active: Amount,
    /// Amount delegated but not yet earning (warm-up / activation).
    pub activating: Amount,
    /// Whether the validator is jailed, delinquent, tombstoned or otherwise
    /// not earning.
    pub impaired: bool,
    /// The validator's commission rate (decimal fraction), where the chain
    /// has one.
    #[serde(default)]
    pub commission: Option<String>,
}

/// Value the pool lost on chain (a slashing), detected by the adapter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LossEvent {
    /// Validator whose stake lost value.
    pub validator: ValidatorId,
    /// How much of the pool's stake was lost.
    pub amount: Amount,
    /// What the chain shows (e.g. "validator exchange rate fell").
    pub reason: String,
}

/// Funds on their way back to the liquid balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnbondingEntry {
    /// Validator it was unbonded from.
    pub validator: ValidatorId,
    /// Amount.
    pub amount: Amount,
    /// When it becomes withdrawable (best estimate for epoch-based chains).
    pub completes_at: Timestamp,
}

/// Chain parameters the planner needs, read from the chain at run time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLimits {
    /// Smallest delegation the chain accepts.
    pub min_delegation: Amount,
    /// Most concurrent unbonding entries per validator (`None`: unlimited).
    pub max_unbonding_entries: Option<u32>,
    /// Seconds from undelegate to withdrawable (worst case).
    pub unbonding_delay_secs: u64,
    /// Whether delegated funds stay spendable (Cardano, Tezos delegation).
    pub delegation_keeps_funds_liquid: bool,
    /// Stake moves in chunks of this size (Ethereum: 32 ETH), if any.
    pub stake_chunk: Option<Amount>,
    /// Stake can move between validators without unbonding (Cosmos
    /// redelegation): the planner moves stake off impaired and loss-marked
    /// validators this way.
    #[serde(default)]
    pub redelegation: bool,
    /// Validators whose stake arrived by a redelegation still maturing:
    /// the chain refuses to move it again until then (Cosmos's
    /// transitive-redelegation rule).
    #[serde(default)]
    pub redelegation_locked: Vec<ValidatorId>,
}

/// Response of [`ChainAdapter::pool_state`]: the custody pool as the chain sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStateResponse {
    /// Chain.
    pub chain: ChainId,
    /// When the state was read (chain time of the head where possible).
    pub as_of: Timestamp,
    /// Spendable, unstaked balance of the custody accounts.
    pub liquid: Amount,
    /// Stake per validator.
    pub delegations: Vec<Delegation>,
    /// Unbonding entries in flight.
    pub unbonding: Vec<UnbondingEntry>,
    /// Matured unbonding ready to withdraw.
    pub withdrawable: Amount,
    /// Rewards accrued and claimable (not yet in `liquid`).
    pub claimable_rewards: Amount,
    /// What the pool's accounts hold beyond all of the above: neither
    /// delegated, unbonding, withdrawable nor spendable (Solana: a stake
    /// account's rent reserve and any lamports paid into it above its
    /// delegation, such as MEV tips). The books count it (as staked); the
    /// planner does not.
    #[serde(default)]
    pub reserved: Amount,
    /// Chain parameters.
    pub limits: ChainLimits,
    /// Losses detected since the adapter's previous reading (slashing).
    #[serde(default)]
    pub losses: Vec<LossEvent>,
    /// Conditions an operator should look at (a baker stopped paying...).
    #[serde(default)]
    pub alerts: Vec<String>,
}

/// What kind of reward, for reporting consensus and execution rewards apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewardKind {
    /// Protocol staking reward (inflation, consensus-layer).
    Consensus,
    /// Execution-layer priority fees and MEV (Ethereum).
    Execution,
    /// A payout made off-protocol by a baker/validator (Tezos delegation).
    DelegationPayout,
    /// Anything the operator entered by hand after reconciliation.
    Manual,
    /// Income nobody announced, found by the pool's books: the part of
    /// the change in holdings no booked flow explains (MEV, tips), with
    /// the two holdings snapshots as evidence.
    Reconciled,
}

impl RewardKind {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            RewardKind::Consensus => "consensus",
            RewardKind::Execution => "execution",
            RewardKind::DelegationPayout => "delegation_payout",
            RewardKind::Manual => "manual",
            RewardKind::Reconciled => "reconciled",
        }
    }
}

/// A reward the chain paid, with the evidence that it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedReward {
    /// Idempotency key, unique per chain (e.g. `era:1234:validator`).
    pub key: String,
    /// Period the reward was earned in.
    pub period: Period,
    /// Gross amount received.
    pub amount: Amount,
    /// Validator / pool / baker that produced it.
    pub validator: ValidatorId,
    /// Kind.
    pub kind: RewardKind,
    /// Transaction hash, if the reward arrived in one.
    pub tx_hash: Option<String>,
    /// Epoch / era / cycle number, if the chain has one.
    pub epoch: Option<u64>,
}

/// Request for [`ChainAdapter::rewards_since`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardsRequest {
    /// Opaque cursor returned by the previous call; `None` from the start.
    pub cursor: Option<String>,
}

/// Response of [`ChainAdapter::rewards_since`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardsResponse {
    /// Rewards observed after the cursor.
    pub rewards: Vec<ObservedReward>,
    /// Cursor to pass next time.
    pub next_cursor: Option<String>,
    /// Rewards paid in the same events in another denomination than the
    /// chain's coin (the Hub's IBC denominations): never distributed as
    /// the coin, kept for the treasury (crates/store/src/foreign.rs).
    #[serde(default)]
    pub foreign: Vec<ForeignReward>,
}

/// A reward paid in a denomination other than the chain's coin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignReward {
    /// Idempotency key, unique per chain.
    pub key: String,
    /// The denomination, as the chain names it (`ibc/27394F…`).
    pub denom: String,
    /// Base units of that denomination (not the chain's coin's).
    pub amount: u128,
    /// Validator that produced it.
    pub validator: ValidatorId,
    /// Transaction it arrived in.
    pub tx_hash: Option<String>,
    /// When it was paid (the block's time).
    pub paid_at: Timestamp,
}

/// What moved value into or out of the custody accounts, other than staking
/// itself and rewards (which [`ChainAdapter::rewards_since`] evidences).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowKind {
    /// A transfer into a custody account from outside the pool (the
    /// exchange's top-up, a stranger's payment, a builder's MEV payment
    /// when the adapter cannot tell it is one).
    TransferIn,
    /// A transfer out of the custody accounts to outside the pool (the
    /// exchange's payout, a theft).
    TransferOut,
    /// A fee the pool paid (transaction fees, request fees).
    Fee,
}

impl FlowKind {
    /// Stable name (database, API).
    pub fn as_str(self) -> &'static str {
        match self {
            FlowKind::TransferIn => "transfer_in",
            FlowKind::TransferOut => "transfer_out",
            FlowKind::Fee => "fee",
        }
    }

    /// Parses [`FlowKind::as_str`].
    pub fn parse(s: &str) -> Option<FlowKind> {
        Some(match s {
            "transfer_in" => FlowKind::TransferIn,
            "transfer_out" => FlowKind::TransferOut,
            "fee" => FlowKind::Fee,
            _ => return None,
        })
    }
}

/// One flow the chain proves, with the transaction that carried it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolFlow {
    /// Idempotency key, unique per chain (e.g. `in:TXID:0`): a flow is
    /// booked once however often it is reported.
    pub key: String,
    /// What it is.
    pub kind: FlowKind,
    /// How much (always positive; the kind gives the direction).
    pub amount: Amount,
    /// The transaction that carried it (what declarations name).
    pub tx_id: String,
    /// The other side (sender or recipient), where the chain shows one.
    pub counterparty: Option<String>,
    /// When the chain included it.
    pub at: Timestamp,
}

/// Request for [`ChainAdapter::replace`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplaceRequest {
    /// Journal id of the operation.
    pub operation_id: String,
    /// What it does (unchanged by a replacement).
    pub kind: OperationKind,
    /// The version the chain refused.
    pub previous: SignedOperation,
}

/// Request for [`ChainAdapter::flows_since`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowsRequest {
    /// Opaque cursor returned by the previous call; `None` from the start.
    pub cursor: Option<String>,
}

impl FlowsRequest {
    /// The height after which an adapter whose cursor is a block height
    /// scans, up to `to` (the block of its last observing pool read): the
    /// cursor's, or `to` itself on the first call (the books open at that
    /// read; what came before is the opening balance).
    pub fn after_height(&self, to: u64) -> Result<u64, AdapterError> {
        match self.cursor.as_deref() {
            None => Ok(to),
            Some(c) => c
                .parse::<u64>()
                .map_err(|_| AdapterError::InvalidRequest(format!("bad flow cursor {c:?}"))),
        }
    }
}

/// Response of [`ChainAdapter::flows_since`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowsResponse {
    /// Flows after the cursor, oldest first.
    pub flows: Vec<PoolFlow>,
    /// Cursor to pass next time.
    pub next_cursor: Option<String>,
    /// Whether the adapter proves *every* transfer and fee of the custody
    /// accounts. Only then do the books act on what they see (suspense for
    /// an undeclared inflow, an incident for an undeclared outflow, income
    /// for a residual that persists); otherwise they record holdings and
    /// residuals and act on nothing.
    pub complete: bool,
}

impl FlowsResponse {
    /// What an adapter that cannot prove flows yet answers: nothing, and
    /// says so, so the books only observe.
    pub fn unsupported() -> FlowsResponse {
        FlowsResponse::default()
    }
}

/// What the pool holds at one reading, split the way the books keep it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holdings {
    /// Spendable, unstaked.
    pub liquid: Amount,
    /// Delegated (active and activating), plus what the pool's accounts
    /// hold beside it ([`PoolStateResponse::reserved`]).
    pub staked: Amount,
    /// Unbonding in flight.
    pub unbonding: Amount,
    /// Matured unbonding not yet withdrawn.
    pub withdrawable: Amount,
    /// Rewards accrued and claimable but not yet evidenced: a receivable,
    /// shown but not booked (a reward enters the books when the adapter
    /// evidences it).
    pub claimable: Amount,
}

impl Holdings {
    /// What the books hold: everything but the unevidenced receivable.
    /// `None` when the sum overflows.
    pub fn booked(&self) -> Option<Amount> {
        self.liquid
            .checked_add(self.staked)?
            .checked_add(self.unbonding)?
            .checked_add(self.withdrawable)
    }
}

impl PoolStateResponse {
    /// The reading as holdings (`None` when a sum overflows).
    pub fn holdings(&self) -> Option<Holdings> {
        let mut staked = self.reserved;
        // Where delegating keeps the funds spendable (Cardano, Tezos in
        // delegation mode) a delegation's amount *is* the liquid balance:
        // counted once, as liquid.
        if !self.limits.delegation_keeps_funds_liquid {
            for d in &self.delegations {
                staked = staked.checked_add(d.active)?.checked_add(d.activating)?;
            }
        }
        let mut unbonding = Amount::ZERO;
        for u in &self.unbonding {
            unbonding = unbonding.checked_add(u.amount)?;
        }
        Some(Holdings {
            liquid: self.liquid,
            staked,
            unbonding,
            withdrawable: self.withdrawable,
            claimable: self.claimable_rewards,
        })
    }
}

/// Request for [`ChainAdapter::build_and_sign`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRequest {
    /// Journal id of the operation (adapters may use it as a memo).
    pub operation_id: String,
    /// What to do.
    pub kind: OperationKind,
}

/// A signed transaction ready to broadcast, and how to find it later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedOperation {
    /// Raw signed bytes exactly as they will be broadcast.
    pub bytes: Vec<u8>,
    /// The chain's transaction id for these bytes.
    pub tx_id: String,
    /// After this instant the transaction can never be included (blockhash
    /// expiry, TTL, mortal era); `None` if it never expires on its own.
    pub valid_until: Option<Timestamp>,
}

/// Request for [`ChainAdapter::broadcast`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BroadcastRequest {
    /// The journaled signed operation.
    pub signed: SignedOperation,
}

/// Response of [`ChainAdapter::broadcast`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BroadcastResponse {
    /// Transaction id the node reported (must equal the journaled one).
    pub tx_id: String,
}

/// Request for [`ChainAdapter::lookup`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupRequest {
    /// Transaction id.
    pub tx_id: String,
    /// The journaled signed bytes, so the adapter can tell from the
    /// transaction itself (timeout height, blockhash) whether it can still
    /// be included.
    pub signed_bytes: Option<Vec<u8>>,
}

/// Where a transaction stands on chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TxStatus {
    /// Included and final enough to act on.
    Confirmed {
        /// Height or slot of inclusion.
        height: u64,
    },
    /// Included but failed (fees paid, effect not applied).
    Failed {
        /// The chain's reason.
        reason: String,
    },
    /// Seen by the node but not yet included.
    Pending,
    /// Held by the node, but it cannot be included at the price it pays
    /// (an EIP-1559 fee cap under the base fee: geth keeps it in its pool
    /// until the base fee falls). The engine signs a replacement under the
    /// same sequence at today's price.
    Stuck {
        /// Why, in the chain's terms.
        reason: String,
    },
    /// Unknown to the chain.
    NotFound,
    /// Unknown to the chain and can never be included any more (past its
    /// timeout height or blockhash validity), as the chain itself proves.
    Expired,
}

/// Response of [`ChainAdapter::lookup`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupResponse {
    /// Status.
    pub status: TxStatus,
    /// Chain time at the node's head, to judge expiry against.
    pub head_time: Timestamp,
}

/// Request for [`ChainAdapter::identify`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentifyRequest {
    /// A transaction the custody account paid a fee for that the journal
    /// does not know.
    pub tx_id: String,
}

/// A staking operation the custody account sent that the journal does not
/// know (a restored database, or a second signer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoundOperation {
    /// What it did, as the planner would have asked for it.
    pub kind: OperationKind,
    /// Where it stands on chain.
    pub status: TxStatus,
    /// The journal id the transaction carries, on chains whose
    /// transactions carry one (a memo): the engine then completes that
    /// journaled operation instead of adopting a new one.
    #[serde(default)]
    pub operation_id: Option<String>,
}

/// Response of [`ChainAdapter::identify`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentifyResponse {
    /// The operation, when the transaction is one of the staking
    /// operations this adapter signs, sent by the custody account. `None`
    /// when it is something else (a plain transfer), unknown to the chain,
    /// or when the adapter cannot tell (`supported` is then false).
    pub found: Option<FoundOperation>,
    /// Whether this adapter can recognise its own operations on chain.
    pub supported: bool,
}

impl IdentifyResponse {
    /// What an adapter that cannot recognise its operations on chain yet
    /// answers: the engine then treats the transaction as unexplained.
    pub fn unsupported() -> IdentifyResponse {
        IdentifyResponse::default()
    }

    /// Not one of the adapter's operations (or unknown to the chain).
    pub fn not_ours() -> IdentifyResponse {
        IdentifyResponse {
            found: None,
            supported: true,
        }
    }

    /// One of the adapter's operations, on a chain whose transactions
    /// carry no journal id.
    pub fn operation(kind: OperationKind, status: TxStatus) -> IdentifyResponse {
        IdentifyResponse {
            found: Some(FoundOperation {
                kind,
                status,
                operation_id: None,
            }),
            supported: true,
        }
    }
}

/// Request for [`ChainAdapter::health`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthRequest {}

/// One RPC endpoint's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointHealth {
    /// Endpoint URL with any credentials removed.
    pub endpoint: String,
    /// Whether it answered.
    pub up: bool,
    /// Head height / slot / level, if it answered.
    pub head_height: Option<u64>,
    /// Seconds its head is behind wall-clock time.
    pub lag_secs: Option<u64>,
    /// How long the health probe took, in milliseconds.
    #[serde(default)]
    pub latency_ms: Option<u64>,
}

/// Response of [`ChainAdapter::health`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResponse {
    /// Every configured endpoint.
    pub endpoints: Vec<EndpointHealth>,
}

/// Errors from a chain adapter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdapterError {
    /// Network failure, timeout, 5xx: try again (possibly another endpoint).
    #[error("transport error at {endpoint}: {message}")]
    Transport {
        /// Endpoint (credentials removed).
        endpoint: String,
        /// What happened.
        message: String,
    },
    /// The endpoint asked us to slow down.
    #[error("rate limited by {endpoint}")]
    RateLimited {
        /// Endpoint (credentials removed).
        endpoint: String,
    },
    /// The endpoint serves another network (wrong chain id / genesis hash).
    #[error("endpoint {endpoint} is on the wrong network: expected {expected}, found {found}")]
    WrongNetwork {
        /// Endpoint.
        endpoint: String,
        /// Configured network.
        expected: String,
        /// What the endpoint reports.
        found: String,
    },
    /// The request cannot succeed as asked (below minimum, unknown validator,
    /// more than the free balance...). Nothing was signed or sent.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The chain rejected the transaction, or a node refused a query.
    #[error("transaction rejected: {0}")]
    Rejected(String),
    /// The chain refused for now, for a reason that passes by itself (a
    /// conflicting operation of ours still waits for its block): retry
    /// later, quietly.
    #[error("refused for now: {0}")]
    TryLater(String),
    /// The node refused the transaction for its fee before it entered any
    /// mempool (the Cosmos Hub's fee market rose after it was signed): it
    /// holds nothing of it, so the operation may be signed again at the
    /// market's price under the same sequence ([`ChainAdapter::replace`]).
    /// Retryable: the same bytes may still be taken once the price falls.
    #[error("refused for its fee: {0}")]
    Underpriced(String),
    /// A node answered, but not in the shape its API defines (undecodable
    /// JSON, a missing or mistyped field): another endpoint may answer
    /// properly, so it is retryable.
    #[error("bad response from {endpoint}: {message}")]
    BadResponse {
        /// Endpoint (shown through `redact_endpoint`).
        endpoint: String,
        /// What was wrong with it.
        message: String,
    },
    /// Configuration or key problem.
    #[error("configuration error: {0}")]
    Config(String),
}

impl AdapterError {
    /// Whether retrying the same call later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            AdapterError::Transport { .. }
                | AdapterError::RateLimited { .. }
                | AdapterError::BadResponse { .. }
                | AdapterError::TryLater(_)
                | AdapterError::Underpriced(_)
        )
    }
}

/// Housekeeping an adapter asks for when the planner has nothing to do
/// (Solana: merge stake accounts that are both active on one validator).
/// It goes through the journal, caps and approvals like any operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Maintenance {
    /// The operation.
    pub kind: OperationKind,
    /// Why, for the journal and the operator.
    pub reason: String,
}

/// The capabilities every chain adapter provides. Object safe, so the daemon
/// holds `Arc<dyn ChainAdapter>` built from config.
#[async_trait]
pub trait ChainAdapter: Send + Sync {
    /// The chain this adapter talks to.
    fn chain(&self) -> ChainId;

    /// Reads the custody pool and the chain's limits.
    async fn pool_state(&self, req: PoolStateRequest) -> Result<PoolStateResponse, AdapterError>;

    /// Rewards paid since a cursor, with evidence.
    async fn rewards_since(&self, req: RewardsRequest) -> Result<RewardsResponse, AdapterError>;

    /// Transfers and fees of the custody accounts since a cursor, with
    /// the transactions that carried them ([`FlowsResponse::complete`]
    /// says whether they are all of them).
    async fn flows_since(&self, req: FlowsRequest) -> Result<FlowsResponse, AdapterError>;

    /// Builds and signs one operation. Sends nothing.
    async fn build_and_sign(&self, req: BuildRequest) -> Result<SignedOperation, AdapterError>;

    /// Signs `req.previous` again as a new version that the chain can
    /// include only instead of it (the same account sequence or nonce), at
    /// today's fee: after the chain refused it as [`AdapterError::Underpriced`].
    /// Sends nothing; the engine journals the new version next to the old
    /// one before broadcasting it. `TryLater` when no better version can be
    /// signed now (the price is above the ceiling, or no higher than the
    /// previous fee); a chain without replacement refuses, and its
    /// operation waits for the chain to prove expiry as before.
    async fn replace(&self, req: ReplaceRequest) -> Result<SignedOperation, AdapterError> {
        Err(AdapterError::InvalidRequest(format!(
            "{}: operation {} cannot be signed again under the same sequence on this chain",
            self.chain(),
            req.operation_id
        )))
    }

    /// Sends previously signed bytes. Sending the same bytes twice is safe
    /// (the chain deduplicates by tx id).
    async fn broadcast(&self, req: BroadcastRequest) -> Result<BroadcastResponse, AdapterError>;

    /// Finds a transaction by id.
    async fn lookup(&self, req: LookupRequest) -> Result<LookupResponse, AdapterError>;

    /// Recognises a transaction the custody account sent that the journal
    /// does not know (after a database restore): one of this adapter's own
    /// staking operations, decoded from the chain, or not. No default body:
    /// a chain that cannot tell says so with
    /// [`IdentifyResponse::unsupported`].
    async fn identify(&self, req: IdentifyRequest) -> Result<IdentifyResponse, AdapterError>;

    /// Endpoint health.
    async fn health(&self, req: HealthRequest) -> Result<HealthResponse, AdapterError>;

    /// Housekeeping to run when the planner has nothing to do, decided
    /// from the adapter's latest reading (most chains need none and return
    /// an empty list). No default body: a wrapper that forgot to forward it
    /// would silently drop the chain's housekeeping.
    fn maintenance(&self, state: &PoolStateResponse) -> Vec<Maintenance>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delegation_that_keeps_funds_liquid_is_not_counted_twice() {
        let mut p = PoolStateResponse {
            chain: ChainId::Cardano,
            as_of: Timestamp::from_unix(0),
            liquid: Amount::from_base(1_000),
            delegations: vec![Delegation {
                validator: "pool1".into(),
                active: Amount::from_base(1_000),
                activating: Amount::ZERO,
                impaired: false,
                commission: None,
            }],
            unbonding: Vec::new(),
            withdrawable: Amount::ZERO,
            claimable_rewards: Amount::from_base(7),
            reserved: Amount::from_base(2),
            limits: ChainLimits {
                min_delegation: Amount::ZERO,
                max_unbonding_entries: None,
                unbonding_delay_secs: 0,
                delegation_keeps_funds_liquid: true,
                stake_chunk: None,
                redelegation: false,
                redelegation_locked: Vec::new(),
            },
            losses: Vec::new(),
            alerts: Vec::new(),
        };
        assert_eq!(
            p.holdings().unwrap().booked(),
            Some(Amount::from_base(1_002))
        );
        // Bonded stake (every other chain) is beside the liquid balance.
        p.limits.delegation_keeps_funds_liquid = false;
        assert_eq!(
            p.holdings().unwrap().booked(),
            Some(Amount::from_base(2_002))
        );
    }

    #[test]
    fn only_transport_and_rate_limits_are_retryable() {
        let t = AdapterError::Transport {
            endpoint: "http://n".into(),
            message: "timeout".into(),
        };
        assert!(t.is_retryable());
        assert!(
            AdapterError::RateLimited {
                endpoint: "x".into()
            }
            .is_retryable()
        );
        assert!(!AdapterError::Rejected("bad nonce".into()).is_retryable());
        assert!(!AdapterError::InvalidRequest("below minimum".into()).is_retryable());
        assert!(
            !AdapterError::WrongNetwork {
                endpoint: "x".into(),
                expected: "a".into(),
                found: "b".into()
            }
            .is_retryable()
        );
    }

    #[test]
    fn operations_serialize_with_a_kind_tag_and_report_value_moved() {
        let op = OperationKind::Delegate {
            validator: "v1".into(),
            amount: Amount::from_base(5),
        };
        let j = serde_json::to_value(&op).unwrap();
        assert_eq!(j["kind"], "delegate");
        assert_eq!(j["amount"], "5");
        assert_eq!(op.value_moved(), Amount::from_base(5));
        assert_eq!(
            OperationKind::ClaimRewards { validators: vec![] }.value_moved(),
            Amount::ZERO
        );
    }
}
