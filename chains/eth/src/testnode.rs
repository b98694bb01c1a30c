//! Test nodes for the Ethereum adapter:
//! - [`Anvil`]: a real execution-layer node (anvil from npm
//!   `@foundry-rs/anvil`, installed under tests/vectors/eth by
//!   `scripts/check-vectors`), with helpers to deploy contracts, place code,
//!   set balances and the coinbase;
//! - [`BeaconServer`]: the standard Beacon API endpoints the adapter calls
//!   (genesis, spec, head header, validators by id at a state, blocks with
//!   their withdrawals), serving validators whose status and balances the
//!   test moves the way the consensus spec does (activation, rewards,
//!   skims above 32 ETH for 0x01, exits, withdrawal). No beacon node
//!   installs from the registries, so this is spec-shaped data, not a
//!   consensus client.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use softstake_testnode::{Launched, RpcNode};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running anvil; killed on drop.
pub struct Anvil {
    node: RpcNode,
    /// JSON-RPC URL.
    pub url: String,
}

impl std::fmt::Debug for Anvil {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Anvil")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// The EIP-7002 withdrawal request contract's address.
pub const REQUESTS: &str = "0x00000961Ef480Eb55e80D19ad83579A64c007002";

/// The public test vectors (tests/vectors/eth/vectors.json): the custody
/// key, deposit data signed for it, the contracts' bytecode.
pub fn vectors() -> Value {
    serde_json::from_str(include_str!("../../../tests/vectors/eth/vectors.json"))
        .unwrap_or(Value::Null)
}

/// A test chain: anvil with the deposit contract and the request contract
/// at its address, the vectors' custody key funded, the vectors' deposit
/// data entries chosen by index written to a directory, and the Beacon API
/// test server.
pub struct EthWorld {
    /// The execution node.
    pub anvil: Anvil,
    /// The consensus layer.
    pub beacon: BeaconServer,
    /// Where it serves.
    pub beacon_addr: std::net::SocketAddr,
    /// The deposit contract's address.
    pub deposit_contract: String,
    /// The custody address (checksummed).
    pub custody: String,
    /// Where the deposit data file is.
    pub deposit_dir: PathBuf,
}

impl EthWorld {
    /// Starts it with `balance` wei in custody and the deposit data entries
    /// `entries` (indices into the vectors' list) in `dir`; the beacon chain
    /// started in 2023 with 12-second slots.
    pub async fn start(
        balance: u128,
        entries: &[usize],
        dir: &std::path::Path,
    ) -> Result<EthWorld, String> {
        Self::start_at(balance, entries, dir, 1_700_000_000, 12).await
    }

    /// [`EthWorld::start`] with the beacon chain's genesis time and slot
    /// length (the devnet stretches slots).
    pub async fn start_at(
        balance: u128,
        entries: &[usize],
        dir: &std::path::Path,
        genesis_time: u64,
        slot_secs: u64,
    ) -> Result<EthWorld, String> {
        let anvil = Anvil::start().await?;
        let deposit_contract = anvil
            .deploy(
                vectors()["deposit_contract_bytecode"]
                    .as_str()
                    .unwrap_or(""),
            )
            .await?;
        let custody = furnish(&anvil, balance, entries, dir).await?;
        let beacon = BeaconServer::new(genesis_time, slot_secs, 32, "0x10000038");
        beacon.follow_execution(&anvil.url);
        let beacon_addr = beacon
            .serve("127.0.0.1:0".parse().map_err(|e| format!("{e}"))?)
            .await
            .map_err(|e| e.to_string())?;
        Ok(EthWorld {
            anvil,
            beacon,
            beacon_addr,
            deposit_contract,
            custody,
            deposit_dir: dir.to_path_buf(),
        })
    }

    /// The vectors' custody key.
    pub fn key() -> Result<std::sync::Arc<crate::keys::LocalKey>, String> {
        crate::keys::LocalKey::parse(vectors()["custody_key_hex"].as_str().unwrap_or(""), None)
            .map(std::sync::Arc::new)
            .map_err(|e| e.to_string())
    }

    /// The adapter's settings against this world.
    pub fn settings(&self, sweep_delay_secs: u64) -> crate::EthSettings {
        settings(
            vec![self.anvil.url.clone()],
            self.beacon_addr,
            &self.deposit_contract,
            self.deposit_dir.clone(),
            sweep_delay_secs,
        )
    }

    /// One epoch of the consensus layer ([`consensus_step`]).
    pub async fn step(&self) -> Result<(), String> {
        consensus_step(
            &self.anvil,
            &self.beacon,
            &self.deposit_contract,
            &self.custody,
            REQUESTS,
        )
        .await
    }
}

/// What every test chain has beside the deposit contract: the EIP-7002
/// contract at its address, the vectors' custody key funded with
/// `balance` wei, and the vectors' deposit data entries `entries` written
/// to `dir`; returns the custody address (checksummed).
async fn furnish(
    anvil: &Anvil,
    balance: u128,
    entries: &[usize],
    dir: &std::path::Path,
) -> Result<String, String> {
    let v = vectors();
    anvil
        .set_code(
            REQUESTS,
            v["withdrawal_request_runtime"].as_str().unwrap_or(""),
        )
        .await?;
    let custody = EthWorld::key()?.address().to_checksum(None);
    anvil.set_balance(&custody, balance).await?;
    let all = v["deposit_data"].as_array().cloned().unwrap_or_default();
    let pick: Vec<Value> = entries
        .iter()
        .filter_map(|i| all.get(*i).cloned())
        .collect();
    std::fs::write(
        dir.join("deposit_data-1.json"),
        serde_json::to_string(&pick).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    Ok(custody)
}

/// The adapter's settings for a test world: anvil (or any endpoints) with
/// the contracts at `deposit_contract` and the EIP-7002 address, the Beacon
/// API test server at `beacon`, operator `op-a`, chain id 31337, one
/// confirmation.
pub fn settings(
    endpoints: Vec<String>,
    beacon: std::net::SocketAddr,
    deposit_contract: &str,
    deposit_data_dir: PathBuf,
    sweep_delay_secs: u64,
) -> crate::EthSettings {
    crate::EthSettings {
        endpoints,
        beacon_endpoints: vec![format!("http://{beacon}")],
        chain_id: 31337,
        fork_version: [0x10, 0, 0, 0x38],
        deposit_contract: deposit_contract.into(),
        withdrawal_request_contract: REQUESTS.into(),
        deposit_data_dir,
        operator: "op-a".into(),
        fee_recipient: None,
        max_fee_per_gas: 500_000_000_000,
        max_gas: 1_000_000,
        deposit_log_from_block: 0,
        confirmations: 1,
        sweep_delay_secs,
        max_scan_slots: 1_000,
        max_scan_blocks: 1_000,
        request_timeout: Duration::from_secs(10),
    }
}

/// anvil's path: `SOFTSTAKE_ANVIL`, else the npm package's binary.
pub fn anvil_path() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("SOFTSTAKE_ANVIL") {
        return Ok(PathBuf::from(p));
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/vectors/eth/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    if p.exists() {
        Ok(p)
    } else {
        Err(format!(
            "anvil not found at {}: run scripts/check-vectors (npm ci in tests/vectors/eth) or set SOFTSTAKE_ANVIL",
            p.display()
        ))
    }
}

impl Anvil {
    /// Starts anvil (Prague rules, automine, chain id 31337).
    pub async fn start() -> Result<Self, String> {
        Self::start_with(&[]).await
    }

    /// Starts anvil as [`Anvil::start`] with more arguments (for example
    /// `--no-mining`: blocks only when asked, as under [`SpecBeacon`]).
    pub async fn start_with(args: &[&str]) -> Result<Self, String> {
        let mut cmd = tokio::process::Command::new(anvil_path()?);
        cmd.args(["--host", "127.0.0.1", "--port", "0", "--hardfork", "prague"])
            .args(args)
            .stderr(Stdio::null());
        let node = RpcNode::spawn("anvil", cmd, Duration::from_secs(30), None, |line| {
            line.strip_prefix("Listening on ")
                .map(|addr| format!("http://{}", addr.trim()))
        })
        .await?;
        Ok(Anvil {
            url: node.url.clone(),
            node,
        })
    }

    /// One JSON-RPC call.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, String> {
        self.node.call(method, params).await
    }

    /// The first dev account (unlocked, funded).
    pub async fn dev_account(&self) -> Result<String, String> {
        let v = self.call("eth_accounts", json!([])).await?;
        v[0].as_str()
            .map(str::to_owned)
            .ok_or_else(|| "no accounts".into())
    }

    /// Deploys `bytecode` (0x-less hex) from the dev account; returns the address.
    pub async fn deploy(&self, bytecode: &str) -> Result<String, String> {
        self.deploy_in_block(bytecode, false).await
    }

    /// [`Anvil::deploy`], mining a block for it when `mine` (anvil started
    /// with `--no-mining`).
    pub async fn deploy_in_block(&self, bytecode: &str, mine: bool) -> Result<String, String> {
        let from = self.dev_account().await?;
        let hash = self
            .call(
                "eth_sendTransaction",
                json!([{"from": from, "data": format!("0x{bytecode}"), "gas": "0x500000"}]),
            )
            .await?;
        if mine {
            self.call("evm_mine", json!([])).await?;
        }
        let r = self.receipt(&hash).await?;
        r["contractAddress"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("deployment failed: {r}"))
    }

    /// Waits (up to 10 s) for a transaction's receipt.
    pub async fn receipt(&self, hash: &Value) -> Result<Value, String> {
        for _ in 0..200 {
            let r = self
                .call("eth_getTransactionReceipt", json!([hash]))
                .await?;
            if !r.is_null() {
                return Ok(r);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("no receipt for {hash}"))
    }

    /// Places runtime code at an address.
    pub async fn set_code(&self, address: &str, runtime: &str) -> Result<(), String> {
        self.call("anvil_setCode", json!([address, format!("0x{runtime}")]))
            .await
            .map(|_| ())
    }

    /// Sets an account's balance in wei.
    pub async fn set_balance(&self, address: &str, wei: u128) -> Result<(), String> {
        self.call("anvil_setBalance", json!([address, format!("0x{wei:x}")]))
            .await
            .map(|_| ())
    }

    /// Sets the coinbase (fee recipient) of the next blocks.
    pub async fn set_coinbase(&self, address: &str) -> Result<(), String> {
        self.call("anvil_setCoinbase", json!([address]))
            .await
            .map(|_| ())
    }

    /// Mines `n` blocks.
    pub async fn mine(&self, n: u64) -> Result<(), String> {
        self.call("anvil_mine", json!([format!("0x{n:x}")]))
            .await
            .map(|_| ())
    }

    /// Balance in wei.
    pub async fn balance(&self, address: &str) -> Result<u128, String> {
        let v = self
            .call("eth_getBalance", json!([address, "latest"]))
            .await?;
        let s = v.as_str().ok_or("bad balance")?;
        u128::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|e| e.to_string())
    }
}

/// One validator as the test beacon chain holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestValidator {
    /// Index.
    pub index: u64,
    /// 0x-hex pubkey.
    pub pubkey: String,
    /// 0x-hex withdrawal credentials.
    pub withdrawal_credentials: String,
    /// Beacon API status string.
    pub status: String,
    /// Balance, gwei.
    pub balance: u64,
    /// Activation epoch.
    pub activation_epoch: u64,
    /// Exit epoch.
    pub exit_epoch: u64,
    /// Withdrawable epoch.
    pub withdrawable_epoch: u64,
    /// Slashed.
    pub slashed: bool,
}

#[derive(Debug, Default)]
struct BeaconState {
    genesis_time: u64,
    seconds_per_slot: u64,
    slots_per_epoch: u64,
    fork_version: String,
    head_slot: u64,
    /// Validators as of each slot they changed at.
    snapshots: BTreeMap<u64, Vec<TestValidator>>,
    /// Withdrawals per slot: (validator index, address, gwei).
    withdrawals: BTreeMap<u64, Vec<(u64, String, u64)>>,
    withdrawal_index: u64,
    /// Deposits in the state's `pending_deposits` queue (Electra): seen by
    /// the consensus layer, no validator yet. (pubkey, credentials, gwei,
    /// slot)
    pending_deposits: Vec<(String, String, u64, u64)>,
    /// Execution block numbers the blocks' payloads carry, by slot (unset:
    /// the execution node's newest block when the block is read).
    payload_blocks: BTreeMap<u64, u64>,
    /// The execution node the payloads follow (its JSON-RPC URL).
    execution: Option<String>,
    /// The state's `pending_partial_withdrawals` (Electra): (validator
    /// index, gwei, withdrawable epoch).
    pending_partials: Vec<(u64, u64, u64)>,
}

impl BeaconState {
    fn at(&self, slot: u64) -> Vec<TestValidator> {
        self.snapshots
            .range(..=slot)
            .next_back()
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

/// The Beacon API test server.
#[derive(Debug, Clone)]
pub struct BeaconServer {
    state: Arc<Mutex<BeaconState>>,
}

/// Far future epoch.
pub const FAR_FUTURE: u64 = u64::MAX;

impl BeaconServer {
    /// A chain that started at `genesis_time`, with `fork_version` (0x-hex).
    pub fn new(
        genesis_time: u64,
        seconds_per_slot: u64,
        slots_per_epoch: u64,
        fork_version: &str,
    ) -> Self {
        BeaconServer {
            state: Arc::new(Mutex::new(BeaconState {
                genesis_time,
                seconds_per_slot,
                slots_per_epoch,
                fork_version: fork_version.into(),
                ..BeaconState::default()
            })),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut BeaconState) -> R) -> R {
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut s)
    }

    /// Head slot.
    pub fn head(&self) -> u64 {
        self.with(|s| s.head_slot)
    }

    /// Unix time of a slot.
    pub fn slot_time(&self, slot: u64) -> u64 {
        self.with(|s| s.genesis_time + slot * s.seconds_per_slot)
    }

    /// Moves the head forward.
    pub fn advance_slots(&self, n: u64) {
        self.with(|s| s.head_slot += n);
    }

    /// Current validators.
    pub fn validators(&self) -> Vec<TestValidator> {
        self.with(|s| s.at(s.head_slot))
    }

    /// Changes validators at the head slot.
    pub fn update(&self, f: impl FnOnce(&mut Vec<TestValidator>)) {
        self.with(|s| {
            let mut v = s.at(s.head_slot);
            f(&mut v);
            s.snapshots.insert(s.head_slot, v);
        });
    }

    /// A deposit the consensus layer has taken in but not processed yet
    /// (Electra: in the state's `pending_deposits`, no validator yet).
    pub fn add_pending_deposit(&self, pubkey: &str, withdrawal_credentials: &str, gwei: u64) {
        self.with(|s| {
            let slot = s.head_slot;
            s.pending_deposits
                .push((pubkey.into(), withdrawal_credentials.into(), gwei, slot));
        });
    }

    /// Partial withdrawals queued by EIP-7002 requests, not yet swept.
    pub fn pending_partials(&self) -> Vec<(u64, u64, u64)> {
        self.with(|s| s.pending_partials.clone())
    }

    /// Blocks whose payload number was not pinned carry the execution
    /// node's newest block, read from `url` when the block is asked for (a
    /// real beacon node always knows its payload's number).
    pub fn follow_execution(&self, url: &str) {
        self.with(|s| s.execution = Some(url.to_owned()));
    }

    /// The head block's execution payload carries block `number`.
    pub fn set_head_payload_block(&self, number: u64) {
        self.with(|s| {
            let slot = s.head_slot;
            s.payload_blocks.insert(slot, number);
        });
    }

    /// Processes the pending deposits queue: each becomes a pending
    /// validator.
    pub fn process_pending_deposits(&self) {
        for (pk, wc, gwei, _) in self.with(|s| std::mem::take(&mut s.pending_deposits)) {
            self.add_deposit(&pk, &wc, gwei);
        }
    }

    /// A deposit the consensus layer has processed: a pending validator.
    pub fn add_deposit(&self, pubkey: &str, withdrawal_credentials: &str, gwei: u64) -> u64 {
        let mut index = 0;
        self.update(|v| {
            index = v.len() as u64;
            v.push(TestValidator {
                index,
                pubkey: pubkey.to_owned(),
                withdrawal_credentials: withdrawal_credentials.to_owned(),
                status: "pending_queued".into(),
                balance: gwei,
                activation_epoch: FAR_FUTURE,
                exit_epoch: FAR_FUTURE,
                withdrawable_epoch: FAR_FUTURE,
                slashed: false,
            });
        });
        index
    }

    /// Credits a withdrawal (skim or full) at the head slot and takes it
    /// from the validator's balance.
    pub fn withdraw(&self, index: u64, address: &str, gwei: u64) {
        self.update(|v| {
            if let Some(x) = v.iter_mut().find(|x| x.index == index) {
                x.balance = x.balance.saturating_sub(gwei);
            }
        });
        self.with(|s| {
            s.withdrawal_index += 1;
            s.withdrawals
                .entry(s.head_slot)
                .or_default()
                .push((index, address.to_owned(), gwei));
        });
    }

    /// Serves on `addr`; returns the bound address.
    pub async fn serve(&self, addr: std::net::SocketAddr) -> std::io::Result<std::net::SocketAddr> {
        let app = Router::new()
            .route("/eth/v1/beacon/genesis", get(genesis))
            .route("/eth/v1/config/spec", get(spec))
            .route("/eth/v1/beacon/headers/head", get(head))
            .route("/eth/v1/beacon/states/{state}/validators", post(validators))
            .route("/eth/v2/beacon/blocks/{slot}", get(block))
            .route(
                "/eth/v1/beacon/states/{state}/pending_deposits",
                get(pending_deposits),
            )
            .route(
                "/eth/v1/beacon/states/{state}/pending_partial_withdrawals",
                get(pending_partial_withdrawals),
            )
            .with_state(self.clone())
            .layer(axum::middleware::from_fn(|req, next| {
                beacon_api().conform(req, next)
            }));
        softstake_testnode::serve(app, addr).await
    }
}

/// The Beacon API as ethereum/beacon-APIs v4.0.0 publishes it, bundled
/// into one document (tests/fixtures/eth/SOURCES.md). Every answer the
/// Beacon test server serves is checked against it.
pub fn beacon_api() -> softstake_testnode::openapi::Api {
    use softstake_testnode::openapi::{Api, Document};
    static API: std::sync::OnceLock<Api> = std::sync::OnceLock::new();
    Api::pinned(&API, || {
        Ok(vec![Document::new(
            "beacon-APIs v4.0.0",
            "",
            include_str!("../../../tests/fixtures/eth/beacon-node-oapi.json"),
        )?])
    })
}

/// The head state's `pending_deposits` (any state id is served the head).
async fn pending_deposits(
    State(b): State<BeaconServer>,
    Path(_state): Path<String>,
) -> Json<Value> {
    b.with(|s| {
        let data: Vec<Value> = s
            .pending_deposits
            .iter()
            .map(|(pk, wc, gwei, slot)| {
                json!({"pubkey": pk, "withdrawal_credentials": wc, "amount": gwei.to_string(),
                       "signature": format!("0x{}", "00".repeat(96)), "slot": slot.to_string()})
            })
            .collect();
        Json(json!({"version": "electra", "execution_optimistic": false, "finalized": false, "data": data}))
    })
}

/// The head state's `pending_partial_withdrawals`.
async fn pending_partial_withdrawals(
    State(b): State<BeaconServer>,
    Path(_state): Path<String>,
) -> Json<Value> {
    b.with(|s| {
        let data: Vec<Value> = s
            .pending_partials
            .iter()
            .map(|(index, gwei, epoch)| {
                json!({"validator_index": index.to_string(), "amount": gwei.to_string(),
                       "withdrawable_epoch": epoch.to_string()})
            })
            .collect();
        Json(json!({"version": "electra", "execution_optimistic": false, "finalized": false, "data": data}))
    })
}

/// The newest block number of the execution node at `url`.
async fn newest_execution_block(url: &str) -> Result<u64, String> {
    let v = softstake_testnode::JsonRpc::new(url)
        .call("eth_blockNumber", json!([]))
        .await?;
    v.as_str()
        .and_then(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16).ok())
        .ok_or_else(|| format!("eth_blockNumber answered {v}"))
}

/// The Beacon API's documented example answer to `method path`: the
/// server sets what it models, the rest stays as the API documents it.
fn example(method: &str, path: &str) -> Value {
    beacon_api().example(method, path).unwrap_or(Value::Null)
}

async fn genesis(State(b): State<BeaconServer>) -> Json<Value> {
    b.with(|s| {
        let mut v = example("GET", "/eth/v1/beacon/genesis");
        v["data"]["genesis_time"] = json!(s.genesis_time.to_string());
        v["data"]["genesis_validators_root"] = json!(format!("0x{}", "00".repeat(32)));
        v["data"]["genesis_fork_version"] = json!(s.fork_version);
        Json(v)
    })
}

async fn spec(State(b): State<BeaconServer>) -> Json<Value> {
    b.with(|s| {
        // The documented (mainnet) configuration, with this chain's values.
        let mut v = example("GET", "/eth/v1/config/spec");
        for (k, x) in [
            ("SECONDS_PER_SLOT", s.seconds_per_slot.to_string()),
            ("SLOTS_PER_EPOCH", s.slots_per_epoch.to_string()),
            ("MIN_VALIDATOR_WITHDRAWABILITY_DELAY", "256".into()),
            // This model lets a validator exit as soon as it is active (the
            // spec node keeps the real rule).
            ("SHARD_COMMITTEE_PERIOD", "0".into()),
            ("GENESIS_FORK_VERSION", s.fork_version.clone()),
        ] {
            v["data"][k] = json!(x);
        }
        Json(v)
    })
}

async fn head(State(b): State<BeaconServer>) -> Json<Value> {
    b.with(|s| {
        let mut v = example("GET", "/eth/v1/beacon/headers/head");
        v["data"]["header"]["message"]["slot"] = json!(s.head_slot.to_string());
        Json(v)
    })
}

fn epoch_str(e: u64) -> String {
    e.to_string()
}

async fn validators(
    State(b): State<BeaconServer>,
    Path(state): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, (axum::http::StatusCode, String)> {
    let strings = |k: &str| -> Vec<String> {
        body.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let ids: Vec<String> = strings("ids").iter().map(|x| x.to_lowercase()).collect();
    let statuses = strings("statuses");
    let template = example("POST", "/eth/v1/beacon/states/head/validators");
    b.with(|s| {
        let slot = match state.as_str() {
            "head" | "finalized" | "justified" => s.head_slot,
            n => n.parse::<u64>().map_err(|_| {
                (axum::http::StatusCode::BAD_REQUEST, format!("bad state id {n}"))
            })?,
        };
        if slot > s.head_slot {
            return Err((axum::http::StatusCode::NOT_FOUND, "state not found".into()));
        }
        let data: Vec<Value> = s
            .at(slot)
            .into_iter()
            .filter(|v| ids.is_empty() || ids.contains(&v.pubkey.to_lowercase()) || ids.contains(&v.index.to_string()))
            .filter(|v| statuses.is_empty() || statuses.contains(&v.status))
            .map(|v| {
                let mut x = template["data"][0].clone();
                x["index"] = json!(v.index.to_string());
                x["balance"] = json!(v.balance.to_string());
                x["status"] = json!(v.status);
                x["validator"] = json!({
                    "pubkey": v.pubkey,
                    "withdrawal_credentials": v.withdrawal_credentials,
                    "effective_balance": (v.balance.min(32_000_000_000) / 1_000_000_000 * 1_000_000_000).to_string(),
                    "slashed": v.slashed,
                    "activation_eligibility_epoch": "0",
                    "activation_epoch": epoch_str(v.activation_epoch),
                    "exit_epoch": epoch_str(v.exit_epoch),
                    "withdrawable_epoch": epoch_str(v.withdrawable_epoch),
                });
                x
            })
            .collect();
        Ok(Json(json!({"execution_optimistic": false, "finalized": true, "data": data})))
    })
}

async fn block(
    State(b): State<BeaconServer>,
    Path(slot): Path<String>,
) -> Result<Json<Value>, (axum::http::StatusCode, String)> {
    let slot: u64 = slot
        .parse()
        .map_err(|_| (axum::http::StatusCode::BAD_REQUEST, "bad slot".to_string()))?;
    let (pinned, execution) =
        b.with(|s| (s.payload_blocks.get(&slot).copied(), s.execution.clone()));
    let number = match (pinned, execution) {
        (Some(n), _) => n,
        (None, Some(url)) => newest_execution_block(&url)
            .await
            .map_err(|e| (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e))?,
        (None, None) => {
            return Err((
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "no execution block known for slot {slot}: pin one or follow an execution node"
                ),
            ));
        }
    };
    b.with(|s| {
        if slot > s.head_slot {
            return Err((axum::http::StatusCode::NOT_FOUND, "block not found".into()));
        }
        let ws: Vec<Value> = s
            .withdrawals
            .get(&slot)
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, (index, address, amount))| {
                json!({"index": i.to_string(), "validator_index": index.to_string(), "address": address, "amount": amount.to_string()})
            })
            .collect();
        // An Electra block as the API documents it, with this slot, its
        // withdrawals and its execution block number.
        let mut v = example("GET", "/eth/v2/beacon/blocks/head");
        v["version"] = json!("electra");
        let m = &mut v["data"]["message"];
        m["slot"] = json!(slot.to_string());
        // What the server does not model did not happen: no operations,
        // no requests, no transactions, no blobs.
        let body = &mut m["body"];
        for k in [
            "proposer_slashings",
            "attester_slashings",
            "attestations",
            "deposits",
            "voluntary_exits",
            "bls_to_execution_changes",
            "blob_kzg_commitments",
        ] {
            body[k] = json!([]);
        }
        body["execution_requests"] =
            json!({"deposits": [], "withdrawals": [], "consolidations": []});
        body["execution_payload"]["transactions"] = json!([]);
        let payload = &mut body["execution_payload"];
        payload["withdrawals"] = json!(ws);
        payload["block_number"] = json!(number.to_string());
        Ok(Json(v))
    })
}

/// One epoch of the consensus layer as the spec moves it, for tests and the
/// devnet: deposits in the contract's logs become pending validators, the
/// EIP-7002 queue is dequeued by the system call and its exits start,
/// pending validators activate, active ones earn 2,000,000 gwei, exiting
/// ones become withdrawable; the sweep pays exited balances in full and
/// 0x01 balances above 32 ETH to `custody` (credited on anvil).
pub async fn consensus_step(
    anvil: &Anvil,
    beacon: &BeaconServer,
    deposit_contract: &str,
    custody: &str,
    requests_contract: &str,
) -> Result<(), String> {
    const ETH: u128 = 1_000_000_000_000_000_000;
    const GWEI: u64 = 1_000_000_000;
    const SYSTEM: &str = "0xfffffffffffffffffffffffffffffffffffffffe";
    // Deposits in the contract's logs that the beacon chain has not seen.
    let logs = anvil
        .call(
            "eth_getLogs",
            json!([{"address": deposit_contract, "fromBlock": "0x0"}]),
        )
        .await?;
    let known: Vec<String> = beacon
        .validators()
        .iter()
        .map(|v| v.pubkey.clone())
        .collect();
    let empty = Vec::new();
    for l in logs.as_array().unwrap_or(&empty) {
        let data = hex::decode(l["data"].as_str().unwrap_or("0x").trim_start_matches("0x"))
            .map_err(|e| e.to_string())?;
        // ABI: five dynamic byte strings (pubkey, credentials, amount, ...).
        let field = |i: usize| -> Option<Vec<u8>> {
            let word = |at: usize| -> Option<usize> {
                let b: [u8; 8] = data.get(at + 24..at + 32)?.try_into().ok()?;
                usize::try_from(u64::from_be_bytes(b)).ok()
            };
            let off = word(i * 32)?;
            let len = word(off)?;
            data.get(off + 32..off + 32 + len).map(<[u8]>::to_vec)
        };
        let (Some(pk), Some(wc), Some(amt)) = (field(0), field(1), field(2)) else {
            return Err("malformed DepositEvent".into());
        };
        let pubkey = format!("0x{}", hex::encode(pk));
        if known.contains(&pubkey) {
            continue;
        }
        let amount = u64::from_le_bytes(amt.try_into().map_err(|_| "deposit amount")?);
        beacon.add_deposit(&pubkey, &format!("0x{}", hex::encode(wc)), amount);
    }
    // Exit requests the system call dequeues.
    anvil
        .call("anvil_impersonateAccount", json!([SYSTEM]))
        .await?;
    anvil.set_balance(SYSTEM, ETH).await?;
    let out = anvil
        .call(
            "eth_call",
            json!([{"from": SYSTEM, "to": requests_contract, "data": "0x"}, "latest"]),
        )
        .await?;
    let out = hex::decode(out.as_str().unwrap_or("0x").trim_start_matches("0x"))
        .map_err(|e| e.to_string())?;
    if !out.is_empty() {
        let h = anvil
            .call(
                "eth_sendTransaction",
                json!([{"from": SYSTEM, "to": requests_contract, "data": "0x", "gas": "0x100000"}]),
            )
            .await?;
        anvil.receipt(&h).await?;
    }
    // Requests: source (20) ++ pubkey (48) ++ amount (8, big endian); an
    // amount of 0 is a full exit, any other a partial withdrawal.
    let requests: Vec<(String, u64)> = out
        .chunks(76)
        .map(|r| {
            let amount = r[68..76].try_into().map(u64::from_be_bytes).unwrap_or(0);
            (format!("0x{}", hex::encode(&r[20..68])), amount)
        })
        .collect();
    let exits: Vec<String> = requests
        .iter()
        .filter(|(_, a)| *a == 0)
        .map(|(p, _)| p.clone())
        .collect();
    let mut swept: u64 = 0;
    beacon.advance_slots(32);
    let head_epoch = beacon.head() / 32;
    // A partial withdrawal from a compounding (0x02) validator waits in the
    // state's queue until its withdrawable epoch (here: the next step).
    for (pk, gwei) in requests.iter().filter(|(_, a)| *a > 0) {
        if let Some(v) = beacon.validators().iter().find(|v| {
            v.pubkey == *pk
                && v.status == "active_ongoing"
                && v.withdrawal_credentials.starts_with("0x02")
        }) {
            let index = v.index;
            beacon.with(|s| s.pending_partials.push((index, *gwei, head_epoch + 1)));
        }
    }
    beacon.update(|vs| {
        for v in vs.iter_mut() {
            match v.status.as_str() {
                "pending_queued" => {
                    v.status = "active_ongoing".into();
                    v.activation_epoch = head_epoch;
                }
                "active_ongoing" if exits.contains(&v.pubkey) => {
                    v.status = "active_exiting".into();
                    v.exit_epoch = head_epoch + 1;
                    v.withdrawable_epoch = head_epoch + 2;
                }
                "active_ongoing" => v.balance += 2_000_000,
                "active_exiting" => v.status = "withdrawal_possible".into(),
                _ => {}
            }
        }
    });
    // The sweep: due partial withdrawals first (never below 32 ETH), then
    // exited balances in full and balances above the maximum effective
    // balance (0x01: 32 ETH; 0x02: 2048 ETH).
    let due: Vec<(u64, u64, u64)> = beacon.with(|s| {
        let (due, wait) = std::mem::take(&mut s.pending_partials)
            .into_iter()
            .partition(|(_, _, e)| *e <= head_epoch);
        s.pending_partials = wait;
        due
    });
    for (index, gwei, _) in due {
        if let Some(v) = beacon.validators().iter().find(|v| v.index == index) {
            let amount = gwei.min(v.balance.saturating_sub(32 * GWEI));
            if amount > 0 {
                beacon.withdraw(index, custody, amount);
                swept += amount;
            }
        }
    }
    for v in beacon.validators() {
        let max = if v.withdrawal_credentials.starts_with("0x02") {
            2048 * GWEI
        } else {
            32 * GWEI
        };
        let amount = match v.status.as_str() {
            "withdrawal_possible" => v.balance,
            "active_ongoing" if v.balance > max => v.balance - max,
            _ => 0,
        };
        if amount > 0 {
            beacon.withdraw(v.index, custody, amount);
            swept += amount;
        }
        if v.status == "withdrawal_possible" {
            beacon.update(|vs| {
                if let Some(x) = vs.iter_mut().find(|x| x.index == v.index) {
                    x.status = "withdrawal_done".into();
                }
            });
        }
    }
    if swept > 0 {
        let bal = anvil.balance(custody).await?;
        anvil
            .set_balance(custody, bal + u128::from(swept) * 1_000_000_000)
            .await?;
    }
    Ok(())
}

/// The Python interpreter with `eth-consensus-specs` installed:
/// `SOFTSTAKE_ETH_SPEC_PYTHON`, else the venv `scripts/eth-spec-venv`
/// makes under the target directory.
pub fn spec_python() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("SOFTSTAKE_ETH_SPEC_PYTHON") {
        return Ok(PathBuf::from(p));
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    let p = target.join("eth-spec-venv/bin/python");
    if p.exists() {
        Ok(p)
    } else {
        Err(format!(
            "no Python with eth-consensus-specs at {}: run scripts/eth-spec-venv (scripts/test does) or set SOFTSTAKE_ETH_SPEC_PYTHON",
            p.display()
        ))
    }
}

/// The consensus layer as the executable consensus spec runs it
/// (chains/eth/testnode/spec_beacon.py: Electra, minimal preset, every
/// state change the spec's own function), driving an anvil started with
/// `--no-mining`: one execution block per slot, mined by this node with
/// the proposer's fee recipient, withdrawals credited in it, its deposit
/// logs and EIP-7002 requests processed by the spec. The adapter talks to
/// [`SpecBeacon::addr`], a proxy that checks every answer against the
/// published Beacon API ([`beacon_api`]); test controls go to the node
/// itself.
pub struct SpecBeacon {
    _node: Launched<String>,
    url: String,
    http: reqwest::Client,
    /// Where the adapter reaches it (the validating proxy).
    pub addr: std::net::SocketAddr,
}

impl std::fmt::Debug for SpecBeacon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpecBeacon")
            .field("url", &self.url)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// How a [`SpecBeacon`] chain is set up.
#[derive(Debug, Clone)]
pub struct SpecOptions {
    /// Validators at genesis (not ours: 0x00 credentials).
    pub validators: u64,
    /// Epochs a validator must be active before it may exit (the spec's
    /// SHARD_COMMITTEE_PERIOD; 256 on mainnet).
    pub shard_committee_period: u64,
    /// Epochs from exit to withdrawable (MIN_VALIDATOR_WITHDRAWABILITY_
    /// DELAY; 256 on mainnet).
    pub withdrawability_delay: u64,
    /// Seconds per slot (an epoch is 8 slots).
    pub slot_secs: u64,
    /// Genesis time (unix seconds; 0: the execution chain's newest block).
    pub genesis_time: u64,
    /// Every Nth block one of the validators with execution credentials
    /// proposes is built by a builder who pays the fee recipient in its
    /// last transaction (MEV-boost); 0: never.
    pub mev_every: u64,
}

impl Default for SpecOptions {
    fn default() -> Self {
        SpecOptions {
            validators: 64,
            shard_committee_period: 4,
            withdrawability_delay: 4,
            slot_secs: 6,
            genesis_time: 0,
            mev_every: 0,
        }
    }
}

impl SpecBeacon {
    /// Starts the node on `anvil` (which must run with `--no-mining`) with
    /// the deposit contract at `deposit_contract` and the EIP-7002
    /// contract at [`REQUESTS`]; genesis is anvil's newest block.
    pub async fn start(
        anvil: &Anvil,
        deposit_contract: &str,
        opts: &SpecOptions,
    ) -> Result<SpecBeacon, String> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testnode/spec_beacon.py");
        let mut cmd = tokio::process::Command::new(spec_python()?);
        cmd.arg(&script)
            .args(["--port", "0", "--execution", &anvil.url])
            .args(["--deposit-contract", deposit_contract])
            .args(["--requests-contract", REQUESTS])
            .args(["--fork-version", "0x10000038"])
            .args(["--validators", &opts.validators.to_string()])
            .args([
                "--shard-committee-period",
                &opts.shard_committee_period.to_string(),
            ])
            .args([
                "--withdrawability-delay",
                &opts.withdrawability_delay.to_string(),
            ])
            .args(["--slot-secs", &opts.slot_secs.to_string()])
            .args(["--genesis-time", &opts.genesis_time.to_string()])
            .args(["--mev-every", &opts.mev_every.to_string()])
            .stderr(Stdio::inherit());
        let node = Launched::spawn(
            "the consensus spec node",
            cmd,
            Duration::from_secs(120),
            None,
            |line| {
                line.strip_prefix("listening on ")
                    .map(|p| format!("http://127.0.0.1:{}", p.trim()))
            },
        )
        .await?;
        let url = node.ready.clone();
        let http = reqwest::Client::new();
        let upstream = url.clone();
        let client = http.clone();
        let app = Router::new()
            .fallback(move |req: axum::extract::Request| {
                let (client, upstream) = (client.clone(), upstream.clone());
                async move { forward(&client, &upstream, req).await }
            })
            .layer(axum::middleware::from_fn(|req, next| {
                beacon_api().conform(req, next)
            }));
        let addr =
            softstake_testnode::serve(app, "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?)
                .await
                .map_err(|e| e.to_string())?;
        Ok(SpecBeacon {
            _node: node,
            url,
            http,
            addr,
        })
    }

    /// A test control: POST `path` with `body` to the node itself.
    async fn control(&self, path: &str, body: Value) -> Result<Value, String> {
        self.http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .timeout(Duration::from_secs(600))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())
    }

    /// Advances `n` slots (one execution block each); the new head slot.
    pub async fn slots(&self, n: u64) -> Result<u64, String> {
        let v = self.control("/test/slots", json!({"n": n})).await?;
        v["head"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("test/slots answered {v}"))
    }

    /// Mines an execution block between two slots (the mempool included,
    /// no slot passes; the next beacon block takes its requests); `false`
    /// when no second fits before the next slot.
    pub async fn mine(&self) -> Result<bool, String> {
        let v = self.control("/test/mine", json!({})).await?;
        Ok(v["mined"].as_bool().unwrap_or(false))
    }

    /// Advances to the first slot of the next epoch; the new head slot.
    pub async fn next_epoch(&self) -> Result<u64, String> {
        let head = self.head().await?;
        self.slots(8 - head % 8).await
    }

    /// The unix time of a slot.
    pub async fn slot_time(&self, slot: u64) -> Result<u64, String> {
        let g = self.get("/eth/v1/beacon/genesis").await?;
        let genesis: u64 = g
            .pointer("/data/genesis_time")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("genesis answered {g}"))?;
        let sp = self.get("/eth/v1/config/spec").await?;
        let sps: u64 = sp
            .pointer("/data/SECONDS_PER_SLOT")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("spec answered {sp}"))?;
        Ok(genesis + slot * sps)
    }

    /// The head slot.
    pub async fn head(&self) -> Result<u64, String> {
        let v = self.get("/eth/v1/beacon/headers/head").await?;
        v.pointer("/data/header/message/slot")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("head answered {v}"))
    }

    /// The state's exit queue (`earliest_exit_epoch`,
    /// `exit_balance_to_consume`, the churn limit), the current and the
    /// finalized epoch, as decimal strings.
    pub async fn queue(&self) -> Result<Value, String> {
        self.get("/test/queue").await
    }

    /// A GET on the node itself (not through the validating proxy).
    pub async fn get(&self, path: &str) -> Result<Value, String> {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())
    }

    /// One validator at the head by pubkey, as the Beacon API shows it.
    pub async fn validator(&self, pubkey: &str) -> Result<Value, String> {
        let v = self
            .get(&format!(
                "/eth/v1/beacon/states/head/validators?id={pubkey}"
            ))
            .await?;
        v.pointer("/data/0")
            .cloned()
            .ok_or_else(|| format!("no validator {pubkey}"))
    }
}

async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let method = req.method().clone();
    let uri = req.uri().clone();
    let body = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut r = client.request(method, format!("{upstream}{path}"));
    if !body.is_empty() {
        r = r
            .header("content-type", "application/json")
            .body(body.to_vec());
    }
    match r.send().await {
        Ok(res) => {
            let status = axum::http::StatusCode::from_u16(res.status().as_u16())
                .unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
            let bytes = res.bytes().await.unwrap_or_default();
            (
                status,
                [("content-type", "application/json")],
                bytes.to_vec(),
            )
                .into_response()
        }
        Err(e) => (axum::http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// A test chain whose consensus layer is the executable spec: anvil
/// without automine (one block per slot, mined by the spec node), the
/// deposit contract, the EIP-7002 contract at its address, the vectors'
/// custody key funded and the vectors' deposit data entries chosen by
/// index written to a directory, and the [`SpecBeacon`] node.
pub struct SpecWorld {
    /// The execution node.
    pub anvil: Anvil,
    /// The consensus layer.
    pub beacon: SpecBeacon,
    /// The deposit contract's address.
    pub deposit_contract: String,
    /// The custody address (checksummed).
    pub custody: String,
    /// Where the deposit data file is.
    pub deposit_dir: PathBuf,
}

impl SpecWorld {
    /// Starts it with `balance` wei in custody and the deposit data entries
    /// `entries` in `dir`.
    pub async fn start(
        balance: u128,
        entries: &[usize],
        dir: &std::path::Path,
        opts: &SpecOptions,
    ) -> Result<SpecWorld, String> {
        let anvil = Anvil::start_with(&["--no-mining"]).await?;
        let deposit_contract = anvil
            .deploy_in_block(
                vectors()["deposit_contract_bytecode"]
                    .as_str()
                    .unwrap_or(""),
                true,
            )
            .await?;
        let custody = furnish(&anvil, balance, entries, dir).await?;
        let beacon = SpecBeacon::start(&anvil, &deposit_contract, opts).await?;
        Ok(SpecWorld {
            anvil,
            beacon,
            deposit_contract,
            custody,
            deposit_dir: dir.to_path_buf(),
        })
    }

    /// The adapter's settings against this world.
    pub fn settings(&self, sweep_delay_secs: u64) -> crate::EthSettings {
        settings(
            vec![self.anvil.url.clone()],
            self.beacon.addr,
            &self.deposit_contract,
            self.deposit_dir.clone(),
            sweep_delay_secs,
        )
    }
}
