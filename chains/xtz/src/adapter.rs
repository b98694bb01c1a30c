//! [`XtzAdapter`]: the Tezos `ChainAdapter` over the Octez RPC.
//!
//! - Every operation is forged here ([`crate::forge`]), simulated with
//!   `simulate_operation` for gas (the node never forges what we sign),
//!   signed, and injected with `/injection/operation`. The counter comes
//!   from the chain; the engine never plans while an operation is open, so
//!   two operations never race for a counter. A new account is revealed in
//!   the same group as its first operation.
//! - Expiry is proven by the chain: an operation whose branch is more than
//!   `max_operations_time_to_live` levels behind the head can never be
//!   included, so `lookup` reports `Expired`.
//! - Staking mode: stake (frozen, earning on-chain), unstake requests with
//!   their finalizable cycle, finalize_unstake. Delegation mode: the whole
//!   balance is delegated and stays spendable.
//! - Rewards with evidence, scanning blocks from the cursor (a level):
//!   staking rewards from the cycle-end `balance_updates` (deposits credited
//!   to our staker), and delegation payouts from the baker's configured
//!   payout addresses, attributed to the cycle `payout_delay_cycles` before
//!   the one they arrived in.

use crate::forge::{self, Content, Kind, check_tz1};
use crate::keys::Signer;
use crate::ops::{AccountView, Mode, kinds_for};
use async_trait::async_trait;
use serde_json::{Value, json};
use softstake_core::adapter::{
    AdapterError, BroadcastRequest, BroadcastResponse, BuildRequest, ChainAdapter, ChainLimits,
    Delegation, FlowsRequest, FlowsResponse, HealthRequest, HealthResponse, IdentifyRequest,
    IdentifyResponse, LookupRequest, LookupResponse, Maintenance, ObservedReward, PoolStateRequest,
    PoolStateResponse, RewardKind, RewardsRequest, RewardsResponse, SignedOperation, TxStatus,
    UnbondingEntry,
};
use softstake_core::{Amount, ChainId, Period, Timestamp};
use softstake_rpc::{Endpoint, Endpoints, Head as RpcHead, Options, ServerErrors};
use std::sync::Arc;
use std::time::Duration;

/// Settings from `[chains.network]` (type = "tezos").
#[derive(Debug, Clone)]
pub struct XtzSettings {
    /// Octez RPC endpoints, in order of preference.
    pub endpoints: Vec<String>,
    /// Chain id every endpoint must report.
    pub chain_id: String,
    /// Delegation or staking.
    pub mode: Mode,
    /// Addresses the baker pays delegators from.
    pub payout_addresses: Vec<String>,
    /// A payout arriving in cycle c pays for cycle c - this.
    pub payout_delay_cycles: i64,
    /// Most blocks scanned per rewards call.
    pub max_scan: i64,
    /// Alert when no payout arrived for this many cycles.
    pub expected_payout_cycles: Option<i64>,
    /// Per-request timeout.
    pub request_timeout: Duration,
}

/// The adapter.
pub struct XtzAdapter {
    s: XtzSettings,
    signer: Arc<dyn Signer>,
    rpc: Endpoints,
    /// Cycle of the last payout seen (or of the first reading): for the
    /// expected-payout check.
    last_payout_cycle: std::sync::Mutex<Option<i64>>,
}

impl std::fmt::Debug for XtzAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XtzAdapter")
            .field("address", &self.signer.address())
            .field("chain_id", &self.s.chain_id)
            .finish_non_exhaustive()
    }
}

fn num(v: &Value) -> Option<u128> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_u64().map(u128::from))
}

fn inv(m: impl Into<String>) -> AdapterError {
    AdapterError::InvalidRequest(m.into())
}

struct Head {
    hash: String,
    level: i64,
    time: Timestamp,
}

struct Constants {
    blocks_per_cycle: i64,
    block_secs: i64,
    unstake_delay: i64,
    ttl: i64,
}

impl XtzAdapter {
    /// An adapter signing with `signer`.
    pub fn new(s: XtzSettings, signer: Arc<dyn Signer>) -> Result<XtzAdapter, AdapterError> {
        for p in &s.payout_addresses {
            check_tz1("payout address", p).map_err(|e| AdapterError::Config(e.to_string()))?;
        }
        let rpc = Endpoints::http(
            "tezos RPC",
            &s.endpoints,
            Options {
                timeout: s.request_timeout,
                ..Options::default()
            },
        )?
        .with_identity(s.chain_id.clone(), |ep| async move {
            let r = ep.get("/chains/main/chain_id").await?;
            let v = r.json()?;
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| ep.bad_response("chain_id", &v))
        });
        Ok(XtzAdapter {
            s,
            signer,
            rpc,
            last_payout_cycle: std::sync::Mutex::new(None),
        })
    }

    /// The custody address.
    pub fn address(&self) -> String {
        self.signer.address()
    }

    /// One Octez call at one endpoint: `None` for 404; a 4xx (and a 5xx
    /// answering a POST: Octez refuses an injection so) is the node's
    /// refusal with its first error.
    async fn req_at(
        ep: &Endpoint,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, AdapterError> {
        let r = match body {
            Some(b) => ep.post_json(path, b, ServerErrors::Return).await?,
            None => ep.get(path).await?,
        };
        if r.status == 404 {
            return Ok(None);
        }
        if r.status >= 400 {
            // An error body that is not Octez's JSON error list (a proxy's
            // page) says nothing about the operation: retryable.
            let v = r.json()?;
            let first = v.as_array().and_then(|a| a.first());
            let msg = first
                .and_then(|e| e["msg"].as_str().or(e["id"].as_str()))
                .unwrap_or("error")
                .to_owned();
            // One manager operation per source and block ("1M"): an
            // operation of ours still waits for its block. Not a refusal of
            // this one: it is sent again once the other is included.
            let id = first.and_then(|e| e["id"].as_str()).unwrap_or("");
            if id.contains("manager_restriction")
                || msg.to_lowercase().contains("only one manager operation")
            {
                return Err(AdapterError::TryLater(msg));
            }
            return Err(AdapterError::Rejected(msg));
        }
        r.json().map(Some)
    }

    /// GET/POST through the endpoint layer (fallback, chain id checked).
    async fn req(&self, path: &str, body: Option<Value>) -> Result<Option<Value>, AdapterError> {
        self.rpc
            .call(|ep| {
                let body = body.clone();
                async move { Self::req_at(&ep, path, body.as_ref()).await }
            })
            .await
    }

    async fn get(&self, path: &str) -> Result<Value, AdapterError> {
        self.req(path, None)
            .await?
            .ok_or_else(|| AdapterError::Rejected(format!("{path}: not found")))
    }

    /// Makes sure an endpoint on our chain answers (the endpoint layer
    /// checks the chain id before an endpoint's first use).
    async fn check_chain(&self) -> Result<(), AdapterError> {
        self.rpc.call(|_| async { Ok(()) }).await
    }

    async fn head(&self) -> Result<Head, AdapterError> {
        self.header("head").await
    }

    async fn header(&self, block: &str) -> Result<Head, AdapterError> {
        let h = self
            .get(&format!("/chains/main/blocks/{block}/header"))
            .await?;
        Ok(Head {
            hash: h["hash"].as_str().unwrap_or("").to_owned(),
            level: h["level"].as_i64().unwrap_or(0),
            time: h["timestamp"].as_str().unwrap_or("").parse().map_err(|e| {
                AdapterError::BadResponse {
                    endpoint: "tezos RPC".into(),
                    message: format!("block time: {e}"),
                }
            })?,
        })
    }

    async fn constants(&self) -> Result<Constants, AdapterError> {
        let c = self
            .get("/chains/main/blocks/head/context/constants")
            .await?;
        let i = |k: &str| {
            c[k].as_i64()
                .or_else(|| c[k].as_str().and_then(|s| s.parse().ok()))
                .unwrap_or(0)
        };
        Ok(Constants {
            blocks_per_cycle: i("blocks_per_cycle").max(1),
            block_secs: i("minimal_block_delay").max(1),
            unstake_delay: i("unstake_finalization_delay"),
            ttl: i("max_operations_time_to_live").max(1),
        })
    }

    async fn cycle(&self) -> Result<i64, AdapterError> {
        Ok(self
            .get("/chains/main/blocks/head/helpers/current_level")
            .await?["cycle"]
            .as_i64()
            .unwrap_or(0))
    }

    fn contract(&self, field: &str) -> String {
        format!(
            "/chains/main/blocks/head/context/contracts/{}/{field}",
            self.address()
        )
    }

    async fn account(&self) -> Result<(AccountView, u128, u128), AdapterError> {
        let revealed = self
            .req(&self.contract("manager_key"), None)
            .await?
            .is_some_and(|v| !v.is_null());
        let delegate = self
            .req(&self.contract("delegate"), None)
            .await?
            .and_then(|v| v.as_str().map(str::to_owned));
        let counter = num(&self.get(&self.contract("counter")).await?).unwrap_or(0);
        let balance = num(&self.get(&self.contract("balance")).await?).unwrap_or(0);
        Ok((AccountView { revealed, delegate }, counter, balance))
    }

    /// The baker exists, and (staking) accepts stakers with room for `amount`.
    async fn check_baker(&self, baker: &str, stake: u128) -> Result<(), AdapterError> {
        let base = format!("/chains/main/blocks/head/context/delegates/{baker}");
        let Some(params) = self
            .req(&format!("{base}/active_staking_parameters"), None)
            .await?
        else {
            return Err(inv(format!("{baker} is not a registered baker")));
        };
        if stake == 0 {
            return Ok(());
        }
        let limit = num(&params["limit_of_staking_over_baking_millionth"]).unwrap_or(0);
        if limit == 0 {
            return Err(inv(format!("baker {baker} does not accept stakers")));
        }
        let own = num(&self.get(&format!("{base}/own_staked")).await?).unwrap_or(0);
        let external = num(&self.get(&format!("{base}/external_staked")).await?).unwrap_or(0);
        let capacity = Amount::from_base(own)
            .mul_div_floor(limit, 1_000_000)
            .map_or(0, |x| x.0.base())
            .saturating_sub(external);
        if stake > capacity {
            return Err(inv(format!(
                "baker {baker} can take {capacity} mutez more stake, not {stake}"
            )));
        }
        Ok(())
    }

    fn content_json(&self, c: &Content) -> Value {
        let mut v = json!({"source": c.source, "fee": c.fee.to_string(), "counter": c.counter.to_string(),
            "gas_limit": c.gas_limit.to_string(), "storage_limit": c.storage_limit.to_string()});
        match &c.kind {
            Kind::Reveal { public_key } => {
                v["kind"] = json!("reveal");
                v["public_key"] = json!(public_key);
            }
            Kind::Delegation { delegate } => {
                v["kind"] = json!("delegation");
                if let Some(d) = delegate {
                    v["delegate"] = json!(d);
                }
            }
            Kind::StakingCall { amount, entrypoint } => {
                v["kind"] = json!("transaction");
                v["amount"] = json!(amount.to_string());
                v["destination"] = json!(c.source);
                v["parameters"] =
                    json!({"entrypoint": entrypoint.name(), "value": {"prim": "Unit"}});
            }
        }
        v
    }

    async fn scan_ops(&self, level: i64) -> Result<Vec<Value>, AdapterError> {
        Ok(self
            .get(&format!("/chains/main/blocks/{level}/operations/3"))
            .await?
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
}

#[async_trait]
impl ChainAdapter for XtzAdapter {
    fn chain(&self) -> ChainId {
        ChainId::Tezos
    }

    async fn pool_state(&self, _req: PoolStateRequest) -> Result<PoolStateResponse, AdapterError> {
        self.check_chain().await?;
        let head = self.head().await?;
        let k = self.constants().await?;
        let cycle = self.cycle().await?;
        let (acct, _, balance) = self.account().await?;
        let staked = num(&self.get(&self.contract("staked_balance")).await?).unwrap_or(0);
        let reqs = self
            .req(&self.contract("unstake_requests"), None)
            .await?
            .unwrap_or(Value::Null);
        let finalizable: u128 = reqs["finalizable"]
            .as_array()
            .map(|a| a.iter().filter_map(|r| num(&r["amount"])).sum())
            .unwrap_or(0);
        let cycle_secs = k.blocks_per_cycle * k.block_secs;
        let unbonding: Vec<UnbondingEntry> = reqs["unfinalizable"]["requests"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| {
                        let c = r["cycle"].as_i64().unwrap_or(cycle);
                        let cycles_left = (c + k.unstake_delay + 1 - cycle).max(0);
                        UnbondingEntry {
                            validator: acct.delegate.clone().unwrap_or_default(),
                            amount: Amount::from_base(num(&r["amount"]).unwrap_or(0)),
                            completes_at: head.time.plus_secs(cycles_left * cycle_secs),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let liquid_delegation = self.s.mode == Mode::Delegation;
        let mut alerts = Vec::new();
        if let Some(expected) = self.s.expected_payout_cycles {
            let mut last = self
                .last_payout_cycle
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let since = *last.get_or_insert(cycle);
            if acct.delegate.is_some() && cycle - since > expected {
                alerts.push(format!(
                    "no delegation payout from {:?} for {} cycles (expected every {expected})",
                    self.s.payout_addresses,
                    cycle - since
                ));
            }
        }
        let delegations = acct
            .delegate
            .iter()
            .map(|d| Delegation {
                validator: d.clone(),
                active: Amount::from_base(if liquid_delegation { balance } else { staked }),
                activating: Amount::ZERO,
                impaired: false,
                commission: None,
            })
            .collect();
        Ok(PoolStateResponse {
            chain: ChainId::Tezos,
            as_of: head.time,
            liquid: Amount::from_base(balance),
            delegations,
            unbonding,
            withdrawable: Amount::from_base(finalizable),
            claimable_rewards: Amount::ZERO,
            reserved: Amount::ZERO,
            limits: ChainLimits {
                min_delegation: Amount::from_base(1),
                max_unbonding_entries: None,
                unbonding_delay_secs: u64::try_from((k.unstake_delay + 1) * cycle_secs)
                    .unwrap_or(0),
                delegation_keeps_funds_liquid: liquid_delegation,
                stake_chunk: None,
            },
            losses: Vec::new(),
            alerts,
        })
    }

    async fn flows_since(&self, _req: FlowsRequest) -> Result<FlowsResponse, AdapterError> {
        // Transfers and fees of the custody accounts are not proven by
        // this adapter yet (issue 30): the books observe and act on nothing.
        Ok(FlowsResponse::unsupported())
    }

    async fn rewards_since(&self, req: RewardsRequest) -> Result<RewardsResponse, AdapterError> {
        let head = self.head().await?;
        let k = self.constants().await?;
        let me = self.address();
        let from = match &req.cursor {
            Some(c) => {
                c.parse::<i64>()
                    .map_err(|_| inv(format!("bad cursor {c}")))?
                    + 1
            }
            None => 2,
        };
        let to = head.level.min(from + self.s.max_scan - 1);
        let cycle_secs = k.blocks_per_cycle * k.block_secs;
        let genesis = self.header("1").await?.time;
        let cycle_period = |c: i64| {
            let start = genesis.plus_secs(c.max(0) * cycle_secs);
            Period::new(start, start.plus_secs(cycle_secs))
                .map_err(|e| AdapterError::Rejected(e.to_string()))
        };
        let mut rewards = Vec::new();
        for level in from..=to {
            let cycle = (level - 1) / k.blocks_per_cycle;
            if level % k.blocks_per_cycle == 0 {
                let md = self
                    .get(&format!("/chains/main/blocks/{level}/metadata"))
                    .await?;
                let mut amount = 0u128;
                let mut baker = String::new();
                for u in md["balance_updates"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                {
                    if u["kind"] == "freezer"
                        && u["category"] == "deposits"
                        && u["staker"]["contract"] == me.as_str()
                    {
                        amount += num(&u["change"]).unwrap_or(0);
                        baker = u["staker"]["delegate"].as_str().unwrap_or("").to_owned();
                    }
                }
                if amount > 0 {
                    rewards.push(ObservedReward {
                        key: format!("staking:{cycle}"),
                        period: cycle_period(cycle)?,
                        amount: Amount::from_base(amount),
                        validator: baker,
                        kind: RewardKind::Consensus,
                        tx_hash: None,
                        epoch: u64::try_from(cycle).ok(),
                    });
                }
            }
            if self.s.payout_addresses.is_empty() {
                continue;
            }
            for op in self.scan_ops(level).await? {
                for c in op["contents"].as_array().cloned().unwrap_or_default() {
                    let from_payer = c["source"]
                        .as_str()
                        .is_some_and(|s| self.s.payout_addresses.iter().any(|p| p == s));
                    if c["kind"] == "transaction"
                        && c["destination"] == me.as_str()
                        && from_payer
                        && c["metadata"]["operation_result"]["status"] == "applied"
                    {
                        let paid_for = cycle - self.s.payout_delay_cycles;
                        *self
                            .last_payout_cycle
                            .lock()
                            .unwrap_or_else(|e| e.into_inner()) = Some(cycle);
                        let hash = op["hash"].as_str().unwrap_or("").to_owned();
                        rewards.push(ObservedReward {
                            key: format!("payout:{hash}"),
                            period: cycle_period(paid_for)?,
                            amount: Amount::from_base(num(&c["amount"]).unwrap_or(0)),
                            validator: c["source"].as_str().unwrap_or("").to_owned(),
                            kind: RewardKind::DelegationPayout,
                            tx_hash: Some(hash),
                            epoch: u64::try_from(paid_for).ok(),
                        });
                    }
                }
            }
        }
        Ok(RewardsResponse {
            rewards,
            next_cursor: Some(to.max(from - 1).to_string()),
        })
    }

    async fn build_and_sign(&self, req: BuildRequest) -> Result<SignedOperation, AdapterError> {
        self.check_chain().await?;
        let head = self.head().await?;
        let (acct, counter, balance) = self.account().await?;
        let kinds = kinds_for(&req.kind, self.s.mode, &acct, &self.signer.public_key())
            .map_err(|e| inv(e.to_string()))?;
        let mut spend = 0u128;
        for k in &kinds {
            match k {
                Kind::Delegation { delegate: Some(d) } => self.check_baker(d, 0).await?,
                Kind::StakingCall {
                    amount,
                    entrypoint: forge::Entrypoint::Stake,
                } => {
                    let baker = kinds
                        .iter()
                        .find_map(|k| match k {
                            Kind::Delegation { delegate: Some(d) } => Some(d.clone()),
                            _ => None,
                        })
                        .or(acct.delegate.clone())
                        .ok_or_else(|| inv("staking needs a delegate"))?;
                    self.check_baker(&baker, *amount).await?;
                    spend += amount;
                }
                _ => {}
            }
        }
        let mut contents: Vec<Content> = kinds
            .into_iter()
            .enumerate()
            .map(|(i, kind)| Content {
                source: self.address(),
                fee: 0,
                counter: counter + 1 + i as u128,
                gas_limit: 10_000,
                storage_limit: 0,
                kind,
            })
            .collect();
        // Simulate for gas; refuse what the chain would refuse.
        let sim = self
            .req(
                "/chains/main/blocks/head/helpers/scripts/simulate_operation",
                Some(json!({"operation": {"branch": head.hash, "contents": contents.iter().map(|c| self.content_json(c)).collect::<Vec<_>>(),
                    "signature": forge::b58(forge::prefix::EDSIG, &[0u8; 64])},
                    "chain_id": self.s.chain_id})),
            )
            .await?
            .unwrap_or(Value::Null);
        for (c, r) in contents
            .iter_mut()
            .zip(sim["contents"].as_array().cloned().unwrap_or_default())
        {
            let res = &r["metadata"]["operation_result"];
            if res["status"] != "applied" {
                return Err(inv(format!("the chain would refuse it: {}", res["status"])));
            }
            let milligas = num(&res["consumed_milligas"]).unwrap_or(1_000_000);
            c.gas_limit = milligas.div_ceil(1000) + 100;
        }
        // Minimal fee: 100 mutez + 1 per byte + 0.1 per gas unit, per operation.
        let size = forge::forge(&head.hash, &contents)
            .map_err(|e| inv(e.to_string()))?
            .len() as u128
            + 64;
        let per_op_bytes = size.div_ceil(contents.len() as u128);
        for c in &mut contents {
            c.fee = 100 + per_op_bytes + c.gas_limit.div_ceil(10) + 100;
        }
        let fees: u128 = contents.iter().map(|c| c.fee).sum();
        if spend + fees > balance {
            return Err(inv(format!(
                "needs {} mutez, more than the spendable balance {balance}",
                spend + fees
            )));
        }
        let signed = crate::request::sign_contents(self.signer.as_ref(), &head.hash, &contents)
            .map_err(|e| inv(e.to_string()))?;
        let hash = forge::operation_hash(&signed);
        tracing::info!(op = %req.operation_id, kind = req.kind.name(), counter = counter + 1, fees, hash = %hash, "signed");
        Ok(SignedOperation {
            bytes: signed,
            tx_id: hash,
            valid_until: None,
        })
    }

    async fn broadcast(&self, req: BroadcastRequest) -> Result<BroadcastResponse, AdapterError> {
        let v = self
            .req(
                "/injection/operation?chain=main",
                Some(json!(hex::encode(&req.signed.bytes))),
            )
            .await?
            .unwrap_or(Value::Null);
        let hash = v.as_str().unwrap_or(&req.signed.tx_id).to_owned();
        Ok(BroadcastResponse { tx_id: hash })
    }

    async fn lookup(&self, req: LookupRequest) -> Result<LookupResponse, AdapterError> {
        let head = self.head().await?;
        let k = self.constants().await?;
        let bytes = req
            .signed_bytes
            .ok_or_else(|| inv("Tezos lookups need the signed bytes (for the branch)"))?;
        let branch = forge::b58(
            forge::prefix::BLOCK,
            bytes
                .get(..32)
                .ok_or_else(|| inv("signed bytes too short"))?,
        );
        let branch_level = match self
            .req(&format!("/chains/main/blocks/{branch}/header"), None)
            .await?
        {
            Some(h) => h["level"].as_i64().unwrap_or(0),
            None => {
                return Ok(LookupResponse {
                    status: TxStatus::NotFound,
                    head_time: head.time,
                });
            }
        };
        let last = head.level.min(branch_level + k.ttl);
        for level in (branch_level + 1)..=last {
            for op in self.scan_ops(level).await? {
                if op["hash"].as_str() == Some(req.tx_id.as_str()) {
                    let contents = op["contents"].as_array().cloned().unwrap_or_default();
                    let failed = contents
                        .iter()
                        .map(|c| {
                            c["metadata"]["operation_result"]["status"]
                                .as_str()
                                .unwrap_or("")
                        })
                        .find(|s| *s != "applied");
                    let status = match failed {
                        None => TxStatus::Confirmed {
                            height: u64::try_from(level).unwrap_or(0),
                        },
                        Some(s) => TxStatus::Failed {
                            reason: format!("operation {s}"),
                        },
                    };
                    return Ok(LookupResponse {
                        status,
                        head_time: head.time,
                    });
                }
            }
        }
        let status = if head.level > branch_level + k.ttl {
            TxStatus::Expired
        } else {
            TxStatus::NotFound
        };
        Ok(LookupResponse {
            status,
            head_time: head.time,
        })
    }

    async fn identify(&self, _req: IdentifyRequest) -> Result<IdentifyResponse, AdapterError> {
        // Tezos: the flows are not proven yet, so nothing unexplained
        // reaches this call.
        Ok(IdentifyResponse::unsupported())
    }

    async fn health(&self, _req: HealthRequest) -> Result<HealthResponse, AdapterError> {
        let endpoints = self
            .rpc
            .health(|ep| async move {
                let h = Self::req_at(&ep, "/chains/main/blocks/head/header", None)
                    .await?
                    .ok_or_else(|| ep.bad_response("head header", &"404"))?;
                Ok(RpcHead {
                    height: h["level"].as_u64(),
                    time_unix: h["timestamp"]
                        .as_str()
                        .and_then(|t| t.parse::<Timestamp>().ok())
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
