//! [`AtomAdapter`]: the Cosmos Hub `ChainAdapter`.
//!
//! Transport: CometBFT JSON-RPC over HTTP(S) (POST), several endpoints tried
//! in order; a transport failure moves to the next one. Queries are ABCI
//! queries with the SDK's protobuf types. Every pool read checks the chain
//! id first: an endpoint on another network is a fatal `WrongNetwork`.
//!
//! Transactions: SIGN_MODE_DIRECT, gas from a simulation times the
//! configured multiplier (capped), fee = gas x gas price rounded up, and a
//! `timeout_height` on everything, so a dropped transaction provably
//! expires: `lookup` reports `Expired` once the chain is past that height.
//! The account sequence comes from the auth module; transactions signed but
//! not yet included are remembered so the next one takes the following
//! sequence, and forgotten when they are included or their timeout passes.
//! A sequence mismatch at broadcast clears that memory (the next build
//! re-reads the sequence); the rejected bytes are never re-signed.
//!
//! Rewards with evidence: every `withdraw_rewards` event for the custody
//! address (explicit claims and the automatic withdrawals on delegation
//! changes), found with `tx_search`, attributed to the period since the
//! previous one. Cursor: `HEIGHT:UNIX_TIME` of the last event processed.

use crate::DENOM;
use crate::keys::Signer;
use crate::proto::{self as p};
use crate::tx::{CosmosMsg, TxParams, check_valoper, msgs_for, sign_tx};
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use cosmrs::proto::cosmos::{auth, bank, distribution, staking, tx};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use softstake_core::adapter::{
    AdapterError, BroadcastRequest, BroadcastResponse, BuildRequest, ChainAdapter, ChainLimits,
    Delegation, FlowsRequest, FlowsResponse, ForeignReward, HealthRequest, HealthResponse,
    IdentifyRequest, IdentifyResponse, LookupRequest, LookupResponse, LossEvent, Maintenance,
    ObservedReward, OperationKind, PoolFlow, PoolStateRequest, PoolStateResponse, ReplaceRequest,
    RewardKind, RewardsRequest, RewardsResponse, SignedOperation, TxStatus, UnbondingEntry,
};
use softstake_core::{Amount, ChainId, Period, Timestamp};
use softstake_rpc::{Endpoints, Head, Options};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// CometBFT's refusal of bytes its mempool cache holds
/// (`mempool.ErrTxInCache`, v0.38).
pub const TX_IN_CACHE: &str = "tx already exists in cache";

tokio::task_local! {
    /// The height every ABCI query of a pool read is answered at, so the
    /// balance, delegations, unbonding and rewards are one state of the
    /// chain, the one the flows are read up to.
    static PINNED: u64;
}

/// Settings from `[chains.network]` (type = "cosmos") and the chain section.
#[derive(Debug, Clone)]
pub struct AtomSettings {
    /// CometBFT RPC endpoints, in order of preference.
    pub endpoints: Vec<String>,
    /// Chain id every endpoint must report.
    pub chain_id: String,
    /// uatom per unit of gas: the price without a fee market, and the
    /// floor with one.
    pub gas_price: Decimal,
    /// Price transactions from the chain's fee market (`x/feemarket`, on
    /// the Hub since Gaia v20) at signing time.
    pub fee_market: bool,
    /// The fee market's price is multiplied by this (>= 1), so a
    /// transaction still pays enough after the price rose for a few
    /// blocks before it is included.
    pub gas_price_margin: Decimal,
    /// Nothing is signed while the price to pay is above this (uatom per
    /// gas): the operation waits (`TryLater`) instead of paying any price.
    pub max_gas_price: Decimal,
    /// Simulated gas is multiplied by this.
    pub gas_multiplier: Decimal,
    /// Refuse operations needing more gas.
    pub max_gas: u64,
    /// Blocks a signed transaction stays valid.
    pub timeout_blocks: u64,
    /// Memo on every transaction.
    pub memo: String,
    /// Per-request timeout.
    pub request_timeout: Duration,
}

/// The adapter.
pub struct AtomAdapter {
    s: AtomSettings,
    signer: Arc<dyn Signer>,
    rpc: Endpoints,
    /// Sequences signed but not yet seen included: (sequence, timeout height).
    pending: Mutex<Vec<(u64, u64)>>,
    /// Last seen exchange rate per validator: (tokens, delegator shares x
    /// 10^18), to detect slashing.
    rates: Mutex<std::collections::HashMap<String, (u128, u128)>>,
    /// Height of the last observing pool read: flows are read up to it.
    observed: Mutex<Option<u64>>,
    /// The SDK's module accounts (staking moves, not flows).
    internal: Vec<String>,
}

impl std::fmt::Debug for AtomAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtomAdapter")
            .field("address", &self.signer.address())
            .field("chain_id", &self.s.chain_id)
            .finish_non_exhaustive()
    }
}

struct Status {
    height: u64,
    time: Timestamp,
}

/// A node answer that does not decode.
fn bad_response(message: String) -> AdapterError {
    AdapterError::BadResponse {
        endpoint: "cosmos RPC".into(),
        message,
    }
}

/// A node time (RFC 3339, CometBFT prints nanoseconds), to the second.
pub fn parse_time(s: &str) -> Result<Timestamp, AdapterError> {
    // CometBFT prints nanoseconds; whole seconds are enough here.
    let trimmed = match (s.find('.'), s.rfind(['Z', '+'])) {
        (Some(dot), Some(z)) if dot < z => format!("{}{}", &s[..dot], &s[z..]),
        _ => s.to_owned(),
    };
    trimmed.parse().map_err(|e| AdapterError::BadResponse {
        endpoint: "cosmos RPC".into(),
        message: format!("node time {s:?}: {e}"),
    })
}

impl AtomAdapter {
    /// An adapter signing with `signer`.
    pub fn new(s: AtomSettings, signer: Arc<dyn Signer>) -> Result<AtomAdapter, AdapterError> {
        let rpc = Endpoints::http(
            "cosmos RPC",
            &s.endpoints,
            Options {
                timeout: s.request_timeout,
                ..Options::default()
            },
        )?
        .with_identity(s.chain_id.clone(), |ep| async move {
            let v = ep.json_rpc("status", json!({})).await?;
            // Rewards, flows and our own transactions are found with
            // `tx_search`: a node that does not index transactions answers
            // it with nothing, which would read as "nothing happened".
            if v["node_info"]["other"]["tx_index"].as_str() == Some("off") {
                return Err(AdapterError::Config(format!(
                    "cosmos RPC endpoint {} does not index transactions (tx_index: off): softstake finds rewards, transfers, fees and its own transactions with tx_search; set `[tx_index] indexer = \"kv\"` in the node's config.toml, or use another endpoint",
                    ep.shown()
                )));
            }
            v["node_info"]["network"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| ep.bad_response("status", &v))
        });
        Ok(AtomAdapter {
            s,
            signer,
            rpc,
            pending: Mutex::new(Vec::new()),
            rates: Mutex::new(std::collections::HashMap::new()),
            observed: Mutex::new(None),
            internal: crate::flows::internal_addresses(),
        })
    }

    /// The custody address.
    pub fn address(&self) -> String {
        self.signer.address()
    }

    /// JSON-RPC through the endpoint layer (fallback, chain id checked).
    async fn call(&self, method: &str, params: Value) -> Result<Value, AdapterError> {
        self.rpc
            .call(|ep| {
                let params = params.clone();
                async move { ep.json_rpc(method, params).await }
            })
            .await
    }

    async fn abci<Q: cosmrs::proto::prost::Message, R: cosmrs::proto::prost::Message + Default>(
        &self,
        path: &str,
        q: &Q,
    ) -> Result<Option<R>, AdapterError> {
        let r = self
            .call(
                "abci_query",
                json!({"path": path, "data": hex::encode(p::encode(q)), "height": PINNED.try_with(|h| *h).unwrap_or(0).to_string(), "prove": false}),
            )
            .await?;
        let resp = &r["response"];
        let code = resp["code"].as_u64().unwrap_or(0);
        if code != 0 {
            let log = resp["log"].as_str().unwrap_or("");
            if log.contains("not found") {
                return Ok(None);
            }
            return Err(AdapterError::Rejected(format!(
                "{path}: code {code}: {log}"
            )));
        }
        let bytes = B64
            .decode(resp["value"].as_str().unwrap_or(""))
            .map_err(|e| bad_response(format!("{path}: value: {e}")))?;
        p::decode(&bytes)
            .map(Some)
            .map_err(|e| bad_response(format!("{path}: {e}")))
    }

    /// `status` (the endpoint layer has checked the chain id).
    async fn status(&self) -> Result<Status, AdapterError> {
        let v = self.call("status", json!({})).await?;
        let height = v["sync_info"]["latest_block_height"]
            .as_str()
            .and_then(|h| h.parse().ok())
            .unwrap_or(0);
        let time = parse_time(v["sync_info"]["latest_block_time"].as_str().unwrap_or(""))?;
        Ok(Status { height, time })
    }

    async fn balance(&self, addr: &str) -> Result<Amount, AdapterError> {
        let r: Option<bank::v1beta1::QueryBalanceResponse> = self
            .abci(
                p::BALANCE,
                &bank::v1beta1::QueryBalanceRequest {
                    address: addr.to_owned(),
                    denom: crate::DENOM.into(),
                },
            )
            .await?;
        let amt = r
            .and_then(|r| r.balance)
            .map_or(Ok(0), |c| c.amount.parse::<u128>())
            .map_err(|e| bad_response(format!("balance: {e}")))?;
        Ok(Amount::from_base(amt))
    }

    async fn delegations(&self) -> Result<Vec<(String, Amount, u128)>, AdapterError> {
        let r: Option<staking::v1beta1::QueryDelegatorDelegationsResponse> = self
            .abci(
                p::DELEGATIONS,
                &staking::v1beta1::QueryDelegatorDelegationsRequest {
                    delegator_addr: self.address(),
                    pagination: None,
                },
            )
            .await?;
        r.map(|r| r.delegation_responses)
            .unwrap_or_default()
            .into_iter()
            .map(|d| {
                let del = d.delegation.unwrap_or_default();
                let bal = d
                    .balance
                    .map_or(Ok(0), |c| c.amount.parse::<u128>())
                    .map_err(|e| bad_response(format!("delegation balance: {e}")))?;
                let shares: u128 = del
                    .shares
                    .parse()
                    .map_err(|e| bad_response(format!("delegation shares: {e}")))?;
                Ok((del.validator_address, Amount::from_base(bal), shares))
            })
            .collect()
    }

    /// (src, dst) of every redelegation entry still maturing.
    async fn redelegations(&self) -> Result<Vec<(String, String)>, AdapterError> {
        let r: Option<staking::v1beta1::QueryRedelegationsResponse> = self
            .abci(
                p::REDELEGATIONS,
                &staking::v1beta1::QueryRedelegationsRequest {
                    delegator_addr: self.address(),
                    ..Default::default()
                },
            )
            .await?;
        let mut out = Vec::new();
        for rr in r.map(|r| r.redelegation_responses).unwrap_or_default() {
            if let Some(rd) = rr.redelegation {
                for _ in &rd.entries {
                    out.push((
                        rd.validator_src_address.clone(),
                        rd.validator_dst_address.clone(),
                    ));
                }
            }
        }
        Ok(out)
    }

    async fn validator(
        &self,
        v: &str,
    ) -> Result<Option<staking::v1beta1::Validator>, AdapterError> {
        let r: Option<staking::v1beta1::QueryValidatorResponse> = self
            .abci(
                p::VALIDATOR,
                &staking::v1beta1::QueryValidatorRequest {
                    validator_addr: v.to_owned(),
                },
            )
            .await?;
        Ok(r.and_then(|r| r.validator))
    }

    async fn params(&self) -> Result<(u64, u32), AdapterError> {
        let r: Option<staking::v1beta1::QueryParamsResponse> = self
            .abci(p::STAKING_PARAMS, &staking::v1beta1::QueryParamsRequest {})
            .await?;
        let params = r
            .and_then(|r| r.params)
            .ok_or_else(|| bad_response("staking params missing".into()))?;
        let secs = params
            .unbonding_time
            .map_or(0, |d| u64::try_from(d.seconds).unwrap_or(0));
        Ok((secs, params.max_entries))
    }

    async fn unbonding(&self) -> Result<Vec<UnbondingEntry>, AdapterError> {
        let r: Option<staking::v1beta1::QueryDelegatorUnbondingDelegationsResponse> = self
            .abci(
                p::UNBONDING,
                &staking::v1beta1::QueryDelegatorUnbondingDelegationsRequest {
                    delegator_addr: self.address(),
                    pagination: None,
                },
            )
            .await?;
        let mut out = Vec::new();
        for u in r.map(|r| r.unbonding_responses).unwrap_or_default() {
            for e in u.entries {
                out.push(UnbondingEntry {
                    validator: u.validator_address.clone(),
                    amount: Amount::from_base(
                        e.balance
                            .parse()
                            .map_err(|x| bad_response(format!("unbonding balance: {x}")))?,
                    ),
                    completes_at: Timestamp::from_unix(e.completion_time.map_or(0, |t| t.seconds)),
                });
            }
        }
        Ok(out)
    }

    async fn account(&self) -> Result<(u64, u64), AdapterError> {
        let r: Option<auth::v1beta1::QueryAccountResponse> = self
            .abci(
                p::ACCOUNT,
                &auth::v1beta1::QueryAccountRequest {
                    address: self.address(),
                },
            )
            .await?;
        let any = r.and_then(|r| r.account).ok_or_else(|| {
            AdapterError::InvalidRequest(format!(
                "account {} does not exist on chain yet (fund it first)",
                self.address()
            ))
        })?;
        let base: auth::v1beta1::BaseAccount =
            p::decode(&any.value).map_err(AdapterError::Rejected)?;
        Ok((base.account_number, base.sequence))
    }

    /// The messages an operation makes against today's delegations,
    /// checked against the chain's rules before anything is signed.
    async fn messages(&self, kind: &OperationKind) -> Result<Vec<CosmosMsg>, AdapterError> {
        let delegated: Vec<String> = self.delegations().await?.into_iter().map(|d| d.0).collect();
        let msgs =
            msgs_for(kind, &delegated).map_err(|e| AdapterError::InvalidRequest(e.to_string()))?;
        let (_, max_entries) = self.params().await?;
        self.precheck(&msgs, max_entries).await?;
        Ok(msgs)
    }

    /// Signs `msgs` under `sequence`: gas from a simulation, the fee at
    /// today's price, a timeout `timeout_blocks` after `height`. The
    /// sequence is remembered as pending.
    async fn sign_at(
        &self,
        msgs: &[CosmosMsg],
        account_number: u64,
        sequence: u64,
        height: u64,
    ) -> Result<(crate::tx::SignedTx, u64, Amount), AdapterError> {
        let timeout_height = height + self.s.timeout_blocks;
        let mut params = TxParams {
            chain_id: self.s.chain_id.clone(),
            account_number,
            sequence,
            fee_amount: Amount::ZERO,
            gas_limit: 0,
            memo: self.s.memo.clone(),
            timeout_height,
        };
        // Simulate for gas.
        let sim = sign_tx(self.signer.as_ref(), &params, msgs)
            .map_err(|e| AdapterError::InvalidRequest(e.to_string()))?;
        let r: Option<tx::v1beta1::SimulateResponse> = self
            .abci(
                p::SIMULATE,
                &tx::v1beta1::SimulateRequest {
                    tx_bytes: sim.bytes,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| match e {
                AdapterError::Rejected(m) => {
                    AdapterError::InvalidRequest(format!("the chain would refuse it: {m}"))
                }
                other => other,
            })?;
        let used = r.and_then(|r| r.gas_info).map_or(0, |g| g.gas_used);
        let price = self.gas_price_now().await?;
        let (gas, fee) = self.gas_and_fee(used, price)?;
        params.gas_limit = gas;
        params.fee_amount = fee;
        let signed = sign_tx(self.signer.as_ref(), &params, msgs)
            .map_err(|e| AdapterError::InvalidRequest(e.to_string()))?;
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((sequence, timeout_height));
        Ok((signed, gas, fee))
    }

    fn next_sequence(&self, chain_seq: u64, height: u64) -> u64 {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        // Included (below the chain's sequence) or expired: forget.
        pending.retain(|(seq, timeout)| *seq >= chain_seq && *timeout >= height);
        pending
            .iter()
            .map(|(s, _)| s + 1)
            .max()
            .unwrap_or(chain_seq)
            .max(chain_seq)
    }

    /// Compares the validator's exchange rate (tokens per share) with the
    /// last one seen; a fall is a slashing, and our loss is what our shares
    /// were worth at the old rate minus what they are worth now.
    ///
    /// Only an observing read (the engine's cycle) moves the baseline; any
    /// other read compares without moving it, so it cannot swallow a loss.
    fn slashing_loss(
        &self,
        v: &str,
        val: &staking::v1beta1::Validator,
        our_shares: u128,
        now_worth: Amount,
        observe: bool,
    ) -> Option<LossEvent> {
        let tokens: u128 = val.tokens.parse().ok()?;
        let vshares: u128 = val.delegator_shares.parse().ok()?;
        let mut rates = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        let prev = if observe {
            rates.insert(v.to_owned(), (tokens, vshares))
        } else {
            rates.get(v).copied()
        };
        let (t0, s0) = prev?;
        // Tokens per share, x 10^18, now and before.
        let now_rate = Amount::from_base(tokens)
            .mul_div_floor(p::DEC_SCALE * p::DEC_SCALE, vshares.max(1))?
            .0;
        let old_rate = Amount::from_base(t0)
            .mul_div_floor(p::DEC_SCALE * p::DEC_SCALE, s0.max(1))?
            .0;
        if now_rate >= old_rate || s0 == 0 {
            return None;
        }
        let before = Amount::from_base(our_shares).mul_div_floor(t0, s0)?.0;
        let lost = before.saturating_sub(now_worth);
        (!lost.is_zero()).then(|| LossEvent {
            validator: v.to_owned(),
            amount: lost,
            reason: "validator exchange rate fell (slashing)".into(),
        })
    }

    fn forget_pending(&self) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Refuses what the chain would refuse, before anything is signed.
    async fn precheck(&self, msgs: &[CosmosMsg], max_entries: u32) -> Result<(), AdapterError> {
        let inv = AdapterError::InvalidRequest;
        for m in msgs {
            let target = match m {
                CosmosMsg::Delegate { validator, .. } => Some(validator),
                CosmosMsg::Redelegate { to, .. } => Some(to),
                _ => None,
            };
            if let Some(v) = target {
                check_valoper(v).map_err(|e| inv(e.to_string()))?;
                match self.validator(v).await? {
                    None => return Err(inv(format!("unknown validator {v}"))),
                    Some(val) if val.jailed => {
                        return Err(inv(format!("validator {v} is jailed; not staking with it")));
                    }
                    Some(_) => {}
                }
            }
            if let CosmosMsg::Redelegate { from, to, .. } = m {
                let reds = self.redelegations().await?;
                if reds.iter().any(|(_, dst)| dst == from) {
                    return Err(inv(format!(
                        "stake redelegated to {from} is still maturing; it cannot be redelegated again until then"
                    )));
                }
                let n = reds.iter().filter(|(s, d)| s == from && d == to).count();
                if n >= max_entries as usize {
                    return Err(inv(format!(
                        "{from} -> {to} already has {n} redelegation entries, the chain's maximum ({max_entries})"
                    )));
                }
            }
            if let CosmosMsg::Undelegate { validator, .. } = m {
                let entries = self
                    .unbonding()
                    .await?
                    .iter()
                    .filter(|e| e.validator == *validator)
                    .count();
                if entries >= max_entries as usize {
                    return Err(inv(format!(
                        "{validator} already has {entries} unbonding entries, the chain's maximum ({max_entries}); wait for one to complete"
                    )));
                }
            }
        }
        let spend: Amount = Amount::checked_sum(msgs.iter().map(|m| match m {
            CosmosMsg::Delegate { amount, .. } => *amount,
            _ => Amount::ZERO,
        }))
        .unwrap_or(Amount::MAX);
        let bal = self.balance(&self.address()).await?;
        if spend > bal {
            return Err(inv(format!(
                "delegating {spend} uatom needs more than the free balance {bal}"
            )));
        }
        Ok(())
    }

    /// The price to pay now, uatom per gas: the fee market's (with the
    /// margin, never below `gas_price`) or the configured one; above
    /// `max_gas_price` nothing is signed.
    async fn gas_price_now(&self) -> Result<Decimal, AdapterError> {
        if !self.s.fee_market {
            return Ok(self.s.gas_price);
        }
        let r: Option<p::GasPriceResponse> = self
            .abci(
                p::FEEMARKET_GAS_PRICE,
                &p::GasPriceRequest {
                    denom: DENOM.into(),
                },
            )
            .await
            .map_err(|e| match e {
                AdapterError::Rejected(m) => AdapterError::Config(format!(
                    "the node answers no fee market price for {DENOM} ({m}): on a chain without x/feemarket set network.fee_market = false"
                )),
                other => other,
            })?;
        let price = r
            .and_then(|r| r.price)
            .filter(|c| c.denom == DENOM)
            .ok_or_else(|| bad_response(format!("{}: no {DENOM} price", p::FEEMARKET_GAS_PRICE)))?;
        let market = p::dec_exact(&price.amount).map_err(bad_response)?;
        let pay = market
            .checked_mul(self.s.gas_price_margin)
            .ok_or_else(|| bad_response(format!("gas price {market} overflows")))?
            .max(self.s.gas_price);
        if pay > self.s.max_gas_price {
            return Err(AdapterError::TryLater(format!(
                "the fee market asks {market} uatom per gas ({pay} with the margin), above network.max_gas_price {}: nothing is signed until it falls",
                self.s.max_gas_price
            )));
        }
        Ok(pay)
    }

    fn gas_and_fee(&self, used: u64, price: Decimal) -> Result<(u64, Amount), AdapterError> {
        let gas = Decimal::from(used)
            .checked_mul(self.s.gas_multiplier)
            .map(|g| g.ceil())
            .and_then(|g| u64::try_from(g.mantissa() / 10i128.pow(g.scale())).ok())
            .ok_or_else(|| AdapterError::Config("gas multiplier overflow".into()))?;
        if gas > self.s.max_gas {
            return Err(AdapterError::InvalidRequest(format!(
                "the operation needs {gas} gas, above max_gas {}",
                self.s.max_gas
            )));
        }
        let fee = Decimal::from(gas)
            .checked_mul(price)
            .map(|f| f.ceil())
            .and_then(|f| u128::try_from(f.mantissa() / 10i128.pow(f.scale())).ok())
            .ok_or_else(|| AdapterError::Config("fee overflow".into()))?;
        Ok((gas, Amount::from_base(fee)))
    }

    async fn tx_block_time(&self, height: &str) -> Result<Timestamp, AdapterError> {
        let b = self.call("block", json!({"height": height})).await?;
        parse_time(b["block"]["header"]["time"].as_str().unwrap_or(""))
    }

    /// Every page of a `tx_search`, oldest first.
    async fn tx_search_all(&self, query: &str) -> Result<Vec<Value>, AdapterError> {
        let mut out = Vec::new();
        for page in 1.. {
            let txs = self.tx_search(query.to_owned(), page).await?;
            let n = txs.len();
            out.extend(txs);
            if n < 100 {
                break;
            }
        }
        Ok(out)
    }

    /// When the custody account first delegated to `validator` (the block
    /// time of its first successful delegate transaction to it), if ever.
    async fn first_delegation(&self, validator: &str) -> Result<Option<Timestamp>, AdapterError> {
        let addr = self.address();
        let txs = self
            .tx_search(
                format!("message.sender='{addr}' AND delegate.validator='{validator}'"),
                1,
            )
            .await?;
        match txs
            .iter()
            .find(|t| t["tx_result"]["code"].as_u64() == Some(0))
            .and_then(|t| t["height"].as_str())
        {
            Some(h) => Ok(Some(self.tx_block_time(h).await?)),
            None => Ok(None),
        }
    }

    async fn tx_search(&self, query: String, page: u32) -> Result<Vec<Value>, AdapterError> {
        let r = self
            .call(
                "tx_search",
                json!({"query": query, "page": page.to_string(), "per_page": "100", "order_by": "asc", "prove": false}),
            )
            .await?;
        Ok(r["txs"].as_array().cloned().unwrap_or_default())
    }
}

#[async_trait]
impl ChainAdapter for AtomAdapter {
    fn chain(&self) -> ChainId {
        ChainId::Cosmos
    }

    async fn pool_state(&self, req: PoolStateRequest) -> Result<PoolStateResponse, AdapterError> {
        let st = self.status().await?;
        let height = st.height;
        let observe = req.observe;
        let state = PINNED.scope(height, self.pool_state_at(st, req)).await?;
        if observe {
            *self.observed.lock().unwrap_or_else(|e| e.into_inner()) = Some(height);
        }
        Ok(state)
    }

    async fn flows_since(&self, req: FlowsRequest) -> Result<FlowsResponse, AdapterError> {
        let observed = *self.observed.lock().unwrap_or_else(|e| e.into_inner());
        let to = match observed {
            Some(h) => h,
            None => self.status().await?.height,
        };
        let from = req.after_height(to)?;
        let mut flows = Vec::new();
        if from < to {
            let addr = self.address();
            let mut txs: std::collections::BTreeMap<(u64, u64), Value> = Default::default();
            for q in [
                format!("transfer.recipient='{addr}'"),
                format!("transfer.sender='{addr}'"),
                format!("tx.fee_payer='{addr}'"),
            ] {
                for t in self
                    .tx_search_all(&format!("{q} AND tx.height>{from} AND tx.height<={to}"))
                    .await?
                {
                    let h = t["height"]
                        .as_str()
                        .and_then(|h| h.parse().ok())
                        .unwrap_or(0);
                    let i = t["index"].as_u64().unwrap_or(0);
                    txs.insert((h, i), t);
                }
            }
            let mut times = std::collections::HashMap::new();
            for ((height, _), t) in txs {
                let hash = t["hash"].as_str().unwrap_or("").to_owned();
                let found = crate::flows::tx_flows(&t, &addr, &self.internal)
                    .map_err(|e| bad_response(format!("tx {hash}: {e}")))?;
                if found.is_empty() {
                    continue;
                }
                let at = match times.get(&height) {
                    Some(t) => *t,
                    None => {
                        let t = self.tx_block_time(&height.to_string()).await?;
                        times.insert(height, t);
                        t
                    }
                };
                for f in found {
                    flows.push(PoolFlow {
                        key: format!("{}:{hash}:{}", f.kind.as_str(), f.event),
                        kind: f.kind,
                        amount: Amount::from_base(f.amount),
                        tx_id: hash.clone(),
                        counterparty: f.counterparty,
                        at,
                    });
                }
            }
        }
        Ok(FlowsResponse {
            flows,
            next_cursor: Some(to.max(from).to_string()),
            complete: true,
        })
    }

    async fn identify(&self, req: IdentifyRequest) -> Result<IdentifyResponse, AdapterError> {
        let hash_b64 = hex::decode(&req.tx_id)
            .map(|b| B64.encode(b))
            .map_err(|_| AdapterError::InvalidRequest(format!("bad tx id {}", req.tx_id)))?;
        let v = match self
            .call("tx", json!({"hash": hash_b64, "prove": false}))
            .await
        {
            Ok(v) => v,
            Err(AdapterError::Rejected(m)) if m.contains("not found") => {
                return Ok(IdentifyResponse::not_ours());
            }
            Err(e) => return Err(e),
        };
        let bytes = B64
            .decode(v["tx"].as_str().unwrap_or(""))
            .map_err(|e| bad_response(format!("tx {}: {e}", req.tx_id)))?;
        let Some(kind) = crate::tx::operation_of(&bytes, &self.address()) else {
            return Ok(IdentifyResponse::not_ours());
        };
        let status = match v["tx_result"]["code"].as_u64() {
            Some(0) => TxStatus::Confirmed {
                height: v["height"]
                    .as_str()
                    .and_then(|h| h.parse().ok())
                    .unwrap_or(0),
            },
            _ => TxStatus::Failed {
                reason: v["tx_result"]["log"]
                    .as_str()
                    .unwrap_or("failed")
                    .to_owned(),
            },
        };
        Ok(IdentifyResponse::operation(kind, status))
    }

    async fn rewards_since(&self, req: RewardsRequest) -> Result<RewardsResponse, AdapterError> {
        let addr = self.address();
        let mut cur = RewardCursor::parse(req.cursor.as_deref())?;
        let mut rewards = Vec::new();
        let mut foreign = Vec::new();
        let txs = self
            .tx_search(
                format!(
                    "withdraw_rewards.delegator='{addr}' AND tx.height>{}",
                    cur.after
                ),
                1,
            )
            .await?;
        for t in txs {
            let height = t["height"].as_str().unwrap_or("0").to_owned();
            let hash = t["hash"].as_str().unwrap_or("").to_owned();
            if t["tx_result"]["code"].as_u64() != Some(0) {
                continue;
            }
            let time = self.tx_block_time(&height).await?;
            // Every withdrawal of a delegation's rewards (asked for, or the
            // one the chain makes on each delegate, undelegate and
            // redelegate) ends that delegation's period: its rewards
            // accrued since its own previous withdrawal, or since it began.
            let withdrawals = crate::flows::withdrawals(&t, &addr)
                .map_err(|e| bad_response(format!("tx {hash}: {e}")))?;
            for w in withdrawals {
                let validator = w.validator;
                let since = match cur.since(&validator) {
                    Some(t) => Some(t),
                    None => self.first_delegation(&validator).await?,
                };
                cur.per.insert(validator.clone(), time);
                // Every denomination the delegation paid: uatom is the
                // pool's reward; any other (the Hub pays IBC denominations
                // too) is kept for the treasury, never dropped.
                let mut amount = 0u128;
                for (denom, n) in w.coins {
                    if denom == crate::DENOM {
                        amount = amount.checked_add(n).ok_or_else(|| {
                            bad_response(format!("tx {hash}: withdraw_rewards amount overflows"))
                        })?;
                    } else if n > 0 {
                        foreign.push(ForeignReward {
                            key: format!("withdraw:{hash}:{validator}:{denom}"),
                            denom,
                            amount: n,
                            validator: validator.clone(),
                            tx_hash: Some(hash.clone()),
                            paid_at: time,
                        });
                    }
                }
                if amount == 0 {
                    continue;
                }
                let start = since.filter(|p| *p < time).unwrap_or(time.plus_secs(-1));
                let period =
                    Period::new(start, time).map_err(|e| AdapterError::Rejected(e.to_string()))?;
                rewards.push(ObservedReward {
                    key: format!("withdraw:{hash}:{validator}"),
                    period,
                    amount: Amount::from_base(amount),
                    validator,
                    kind: RewardKind::Consensus,
                    tx_hash: Some(hash.clone()),
                    epoch: height.parse().ok(),
                });
            }
            cur.after = height.parse().unwrap_or(cur.after);
            cur.last = Some(time);
        }
        Ok(RewardsResponse {
            rewards,
            next_cursor: cur.render().or(req.cursor),
            foreign,
        })
    }

    async fn build_and_sign(&self, req: BuildRequest) -> Result<SignedOperation, AdapterError> {
        let st = self.status().await?;
        let msgs = self.messages(&req.kind).await?;
        let (account_number, chain_seq) = self.account().await?;
        let sequence = self.next_sequence(chain_seq, st.height);
        let (signed, gas, fee) = self
            .sign_at(&msgs, account_number, sequence, st.height)
            .await?;
        tracing::info!(op = %req.operation_id, kind = req.kind.name(), sequence, gas, fee = %fee, tx = %signed.hash, "signed");
        Ok(SignedOperation {
            bytes: signed.bytes,
            tx_id: signed.hash,
            // Expiry is proven by the chain's height (lookup reports
            // Expired), not guessed from a clock.
            valid_until: None,
        })
    }

    /// The same messages under the same sequence at today's price, with a
    /// new timeout height. Only while the account's next sequence is not
    /// past the previous version's (then something used it, and reconcile
    /// finds out what), and only when the messages the operation makes
    /// today are the ones signed before and the fee is higher.
    async fn replace(&self, req: ReplaceRequest) -> Result<SignedOperation, AdapterError> {
        let prev = crate::tx::decode_signed(&req.previous.bytes).map_err(|e| {
            AdapterError::InvalidRequest(format!(
                "operation {}: its journaled bytes do not decode: {e}",
                req.operation_id
            ))
        })?;
        let st = self.status().await?;
        let (account_number, chain_seq) = self.account().await?;
        if chain_seq > prev.sequence {
            return Err(AdapterError::TryLater(format!(
                "sequence {} is used already (the account's next is {chain_seq}): not signed again; the chain shows which transaction used it",
                prev.sequence
            )));
        }
        let msgs = self.messages(&req.kind).await?;
        let (signed, gas, fee) = self
            .sign_at(&msgs, account_number, prev.sequence, st.height)
            .await?;
        let now = crate::tx::decode_signed(&signed.bytes)
            .map_err(|e| AdapterError::InvalidRequest(format!("signed again: {e}")))?;
        if now.messages != prev.messages {
            return Err(AdapterError::TryLater(format!(
                "operation {}: what it would sign today differs from the version the chain refused; that version waits for its timeout height",
                req.operation_id
            )));
        }
        if now.fee <= prev.fee {
            return Err(AdapterError::TryLater(format!(
                "the fee market asks no more than the {} {DENOM} already offered",
                prev.fee
            )));
        }
        tracing::info!(op = %req.operation_id, kind = req.kind.name(), sequence = prev.sequence, gas, fee = %fee, previous_fee = prev.fee, tx = %signed.hash, replaces = %req.previous.tx_id, "signed again at the market's price");
        Ok(SignedOperation {
            bytes: signed.bytes,
            tx_id: signed.hash,
            valid_until: None,
        })
    }

    async fn broadcast(&self, req: BroadcastRequest) -> Result<BroadcastResponse, AdapterError> {
        let r = match self
            .call(
                "broadcast_tx_sync",
                json!({"tx": B64.encode(&req.signed.bytes)}),
            )
            .await
        {
            Ok(r) => r,
            // CometBFT refuses bytes its mempool cache has seen before the
            // application checks them, as a JSON-RPC error
            // (`mempool.ErrTxInCache`): these very bytes are already on
            // their way, so this send is done.
            Err(AdapterError::Rejected(m)) if m.contains(TX_IN_CACHE) => {
                return Ok(BroadcastResponse {
                    tx_id: req.signed.tx_id.to_uppercase(),
                });
            }
            Err(e) => return Err(e),
        };
        let code = r["code"].as_u64().unwrap_or(0);
        let hash = r["hash"]
            .as_str()
            .unwrap_or(&req.signed.tx_id)
            .to_uppercase();
        match u32::try_from(code).unwrap_or(u32::MAX) {
            0 | p::CODE_TX_IN_MEMPOOL => Ok(BroadcastResponse { tx_id: hash }),
            p::CODE_WRONG_SEQUENCE => {
                // Someone else used the sequence, or ours is stale: re-read it
                // next time. These bytes are never re-signed.
                self.forget_pending();
                Err(AdapterError::Rejected(format!(
                    "sequence mismatch: {}",
                    r["log"].as_str().unwrap_or("")
                )))
            }
            // The fee market asks more than the fee signed: CheckTx
            // refused it before any mempool took it (skip-mev/feemarket's
            // `CheckTxFee`, `sdkerrors.ErrInsufficientFee`).
            p::CODE_INSUFFICIENT_FEE
                if r["codespace"]
                    .as_str()
                    .is_none_or(|c| c.is_empty() || c == "sdk") =>
            {
                Err(AdapterError::Underpriced(format!(
                    "check_tx code {}: {}",
                    p::CODE_INSUFFICIENT_FEE,
                    r["log"].as_str().unwrap_or("")
                )))
            }
            c => Err(AdapterError::Rejected(format!(
                "check_tx code {c}: {}",
                r["log"].as_str().unwrap_or("")
            ))),
        }
    }

    async fn lookup(&self, req: LookupRequest) -> Result<LookupResponse, AdapterError> {
        let st = self.status().await?;
        let hash_b64 = hex::decode(&req.tx_id)
            .map(|b| B64.encode(b))
            .map_err(|_| AdapterError::InvalidRequest(format!("bad tx id {}", req.tx_id)))?;
        let status = match self
            .call("tx", json!({"hash": hash_b64, "prove": false}))
            .await
        {
            Ok(v) => {
                let height = v["height"]
                    .as_str()
                    .and_then(|h| h.parse().ok())
                    .unwrap_or(0);
                match v["tx_result"]["code"].as_u64() {
                    Some(0) => TxStatus::Confirmed { height },
                    _ => TxStatus::Failed {
                        reason: v["tx_result"]["log"]
                            .as_str()
                            .unwrap_or("failed")
                            .to_owned(),
                    },
                }
            }
            Err(AdapterError::Rejected(m)) if m.contains("not found") => {
                // Past its timeout height the chain can never include it.
                let timeout = req
                    .signed_bytes
                    .as_deref()
                    .and_then(|b| p::decode::<tx::v1beta1::TxRaw>(b).ok())
                    .and_then(|raw| p::decode::<tx::v1beta1::TxBody>(&raw.body_bytes).ok())
                    .map_or(0, |b| b.timeout_height);
                if timeout != 0 && st.height > timeout {
                    TxStatus::Expired
                } else {
                    TxStatus::NotFound
                }
            }
            Err(e) => return Err(e),
        };
        Ok(LookupResponse {
            status,
            head_time: st.time,
        })
    }

    async fn health(&self, _req: HealthRequest) -> Result<HealthResponse, AdapterError> {
        let endpoints = self
            .rpc
            .health(|ep| async move {
                let v = ep.json_rpc("status", json!({})).await?;
                Ok(Head {
                    height: v["sync_info"]["latest_block_height"]
                        .as_str()
                        .and_then(|h| h.parse().ok()),
                    time_unix: v["sync_info"]["latest_block_time"]
                        .as_str()
                        .and_then(|t| parse_time(t).ok())
                        .map(|t| t.unix()),
                })
            })
            .await;
        Ok(HealthResponse { endpoints })
    }

    fn maintenance(&self, _state: &PoolStateResponse) -> Vec<Maintenance> {
        Vec::new()
    }
}

/// For `build_request`: an operation the journal would store.
pub fn operation(kind: OperationKind) -> BuildRequest {
    BuildRequest {
        operation_id: "manual".into(),
        kind,
    }
}

impl AtomAdapter {
    async fn pool_state_at(
        &self,
        st: Status,
        req: PoolStateRequest,
    ) -> Result<PoolStateResponse, AdapterError> {
        let addr = self.address();
        let liquid = self.balance(&addr).await?;
        let (unbonding_secs, max_entries) = self.params().await?;
        let mut delegations = Vec::new();
        let mut losses = Vec::new();
        for (v, bal, shares) in self.delegations().await? {
            let val = self.validator(&v).await?;
            let impaired = val.as_ref().is_none_or(|x| x.jailed || x.status != 3);
            let commission = val
                .as_ref()
                .and_then(|x| x.commission.as_ref())
                .and_then(|c| c.commission_rates.as_ref())
                .and_then(|r| r.rate.parse::<i128>().ok())
                .map(|r| Decimal::from_i128_with_scale(r, 18).normalize().to_string());
            if let Some(l) = val
                .as_ref()
                .and_then(|val| self.slashing_loss(&v, val, shares, bal, req.observe))
            {
                // Reported once, by the observing read.
                if req.observe {
                    tracing::error!(validator = %v, lost = %l.amount, "delegation lost value: the validator was slashed");
                    losses.push(l);
                }
            }
            delegations.push(Delegation {
                validator: v,
                active: bal,
                activating: Amount::ZERO,
                impaired,
                commission,
            });
        }
        let rewards: Option<distribution::v1beta1::QueryDelegationTotalRewardsResponse> = self
            .abci(
                p::TOTAL_REWARDS,
                &distribution::v1beta1::QueryDelegationTotalRewardsRequest {
                    delegator_address: addr,
                },
            )
            .await?;
        let mut claimable = 0u128;
        for r in rewards.map(|r| r.rewards).unwrap_or_default() {
            for c in r.reward.iter().filter(|c| c.denom == crate::DENOM) {
                claimable += p::dec_floor(&c.amount).map_err(AdapterError::Rejected)?;
            }
        }
        // Stake that arrived by a redelegation still maturing cannot move
        // again until it matures (the SDK's transitive-redelegation rule).
        let mut locked: Vec<String> = self
            .redelegations()
            .await?
            .into_iter()
            .map(|(_, dst)| dst)
            .collect();
        locked.sort();
        locked.dedup();
        Ok(PoolStateResponse {
            chain: ChainId::Cosmos,
            as_of: st.time,
            liquid,
            delegations,
            unbonding: self.unbonding().await?,
            withdrawable: Amount::ZERO,
            claimable_rewards: Amount::from_base(claimable),
            reserved: Amount::ZERO,
            limits: ChainLimits {
                min_delegation: Amount::from_base(1),
                max_unbonding_entries: Some(max_entries),
                unbonding_delay_secs: unbonding_secs,
                delegation_keeps_funds_liquid: false,
                stake_chunk: None,
                redelegation: true,
                redelegation_locked: locked,
            },
            losses,
            alerts: Vec::new(),
        })
    }
}

/// Where reward collection stands: the last height read, and the time of
/// each delegation's latest withdrawal (a delegation's rewards accrue from
/// its own previous withdrawal, not another's).
///
/// Text: `HEIGHT:TIME` then `;VALIDATOR=TIME` for each delegation. A cursor
/// from before per-delegation periods (`HEIGHT:TIME` alone) reads with
/// `last` as every delegation's previous withdrawal: as wide as before,
/// never narrower than the truth.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RewardCursor {
    after: u64,
    last: Option<Timestamp>,
    legacy: bool,
    per: std::collections::BTreeMap<String, Timestamp>,
}

impl RewardCursor {
    fn parse(c: Option<&str>) -> Result<RewardCursor, AdapterError> {
        let Some(c) = c else {
            return Ok(RewardCursor::default());
        };
        let bad = || AdapterError::InvalidRequest(format!("bad reward cursor {c:?}"));
        let mut parts = c.split(';');
        let (h, t) = parts
            .next()
            .and_then(|p| p.split_once(':'))
            .ok_or_else(bad)?;
        let mut cur = RewardCursor {
            after: h.parse().map_err(|_| bad())?,
            last: Some(Timestamp::from_unix(t.parse().map_err(|_| bad())?)),
            legacy: true,
            per: Default::default(),
        };
        for p in parts {
            let (v, t) = p.split_once('=').ok_or_else(bad)?;
            cur.legacy = false;
            if v.is_empty() {
                continue; // the marker of a cursor with no delegation yet
            }
            cur.per.insert(
                v.to_owned(),
                Timestamp::from_unix(t.parse().map_err(|_| bad())?),
            );
        }
        Ok(cur)
    }

    /// The previous withdrawal of a delegation, if this cursor knows it.
    fn since(&self, validator: &str) -> Option<Timestamp> {
        self.per
            .get(validator)
            .copied()
            .or(if self.legacy { self.last } else { None })
    }

    fn render(&self) -> Option<String> {
        let last = self.last?;
        let mut out = format!("{}:{}", self.after, last.unix());
        if self.per.is_empty() {
            out.push_str(";=0");
        }
        for (v, t) in &self.per {
            out.push_str(&format!(";{v}={}", t.unix()));
        }
        Some(out)
    }
}

#[cfg(test)]
mod cursor_tests {
    use super::*;

    #[test]
    fn reward_cursors_keep_each_delegations_last_withdrawal_and_read_old_ones() {
        assert_eq!(RewardCursor::parse(None).unwrap(), RewardCursor::default());
        let old = RewardCursor::parse(Some("120:1767225600")).unwrap();
        assert_eq!(old.since("v1"), Some(Timestamp::from_unix(1_767_225_600)));
        let mut c = RewardCursor::parse(Some("120:1767225600;=0")).unwrap();
        assert_eq!(c.since("v1"), None, "a new cursor knows its delegations");
        c.per
            .insert("v1".into(), Timestamp::from_unix(1_767_230_000));
        c.after = 130;
        let text = c.render().unwrap();
        assert_eq!(text, "130:1767225600;v1=1767230000");
        let back = RewardCursor::parse(Some(&text)).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.since("v1"), Some(Timestamp::from_unix(1_767_230_000)));
        assert_eq!(back.since("v2"), None);
        for bad in ["x", "1:y", "1:2;v", "1:2;v=t"] {
            assert!(RewardCursor::parse(Some(bad)).is_err(), "{bad}");
        }
    }
}
