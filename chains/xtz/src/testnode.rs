//! A protocol-faithful Tezos test node (no octez binaries install here).
//!
//! It serves the Octez RPC paths the adapter calls with the same JSON
//! shapes, and processes injected operations like the protocol does, with
//! its own binary decoder (not the adapter's forger):
//! - the branch must be a block of the last `max_operations_time_to_live`
//!   levels; the signature must verify (ed25519, blake2b-256 of 0x03 ||
//!   forged) against the manager key, revealed before or earlier in the same
//!   group; each manager operation's counter must be the account's next one;
//!   the fees must be covered by the spendable balance;
//! - reveal, delegation (set/remove; the baker must be registered), and the
//!   staking pseudo-operations: `stake` (needs a delegate that accepts
//!   stakers, within its capacity), `unstake` (a request for the current
//!   cycle, finalizable after `unstake_delay_cycles`), `finalize_unstake`;
//! - operations are included at the next block ([`TestNode::bake`]); at each
//!   cycle end, staked funds earn rewards, which are auto-staked and shown
//!   in the block's `balance_updates` as the protocol does;
//! - a baker's payout address can pay delegators ([`TestNode::payout`]),
//!   a plain transaction found by scanning blocks.

use crate::forge::{self, prefix};
use crate::keys::verify_operation;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// How the node starts.
#[derive(Debug, Clone)]
pub struct TestNodeConfig {
    /// Chain id (`Net...`).
    pub chain_id: String,
    /// Unix time of level 1.
    pub genesis_time: i64,
    /// Seconds per block.
    pub block_secs: i64,
    /// Blocks per cycle.
    pub blocks_per_cycle: i64,
    /// Cycles from unstake to finalizable.
    pub unstake_delay_cycles: i64,
    /// Staking reward per cycle, parts per million of staked.
    pub reward_ppm_per_cycle: u128,
    /// Bakers: (tz1, accepts stakers, capacity in mutez).
    pub bakers: Vec<(String, bool, u128)>,
    /// Funded implicit accounts (tz1, mutez).
    pub accounts: Vec<(String, u128)>,
}

const TTL: i64 = 240;

#[derive(Debug, Clone, Default)]
struct Account {
    balance: u128,
    counter: u128,
    manager_key: Option<[u8; 32]>,
    delegate: Option<String>,
    staked: u128,
    /// (cycle requested, amount).
    unstake: Vec<(i64, u128)>,
}

#[derive(Debug, Clone)]
struct Baker {
    accepts: bool,
    capacity: u128,
}

#[derive(Debug, Clone)]
struct Included {
    hash: String,
    contents: Vec<Value>,
}

#[derive(Debug)]
struct Node {
    cfg: TestNodeConfig,
    level: i64,
    blocks: BTreeMap<i64, (String, i64)>,
    accounts: BTreeMap<String, Account>,
    bakers: BTreeMap<String, Baker>,
    mempool: Vec<(String, Vec<u8>)>,
    ops: BTreeMap<i64, Vec<Included>>,
    balance_updates: BTreeMap<i64, Vec<Value>>,
}

/// The node. Clones share state.
#[derive(Debug, Clone)]
pub struct TestNode {
    inner: Arc<Mutex<Node>>,
}

fn block_hash(level: i64) -> String {
    let mut payload = [0u8; 32];
    payload[..8].copy_from_slice(&level.to_be_bytes());
    payload[8..16].copy_from_slice(b"softstak");
    forge::b58(prefix::BLOCK, &payload)
}

/// One decoded manager operation.
#[derive(Debug, Clone)]
enum Op {
    Reveal {
        pk: [u8; 32],
    },
    Delegation {
        delegate: Option<String>,
    },
    Transaction {
        amount: u128,
        destination: String,
        entrypoint: Option<u8>,
    },
}

#[derive(Debug, Clone)]
struct Manager {
    source: String,
    fee: u128,
    counter: u128,
    gas_limit: u128,
    storage_limit: u128,
    op: Op,
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let s = self
            .b
            .get(self.i..self.i + n)
            .ok_or("truncated operation")?;
        self.i += n;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn z(&mut self) -> Result<u128, String> {
        let mut n = 0u128;
        let mut shift = 0;
        loop {
            let b = self.byte()?;
            n |= u128::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
            shift += 7;
            if shift > 120 {
                return Err("zarith too long".into());
            }
        }
    }

    fn pkh(&mut self) -> Result<String, String> {
        match self.byte()? {
            0x00 => Ok(forge::b58(prefix::TZ1, self.take(20)?)),
            t => Err(format!("unsupported public key hash tag {t}")),
        }
    }
}

/// Decodes forged bytes (no signature) into the branch and manager operations.
fn decode(forged: &[u8]) -> Result<(String, Vec<Manager>), String> {
    let mut r = Reader { b: forged, i: 0 };
    let branch = forge::b58(prefix::BLOCK, r.take(32)?);
    let mut out = Vec::new();
    while r.i < forged.len() {
        let tag = r.byte()?;
        let source = r.pkh()?;
        let (fee, counter, gas_limit, storage_limit) = (r.z()?, r.z()?, r.z()?, r.z()?);
        let op = match tag {
            0x6b => {
                if r.byte()? != 0x00 {
                    return Err("only ed25519 reveals are supported".into());
                }
                let mut pk = [0u8; 32];
                pk.copy_from_slice(r.take(32)?);
                if r.byte()? != 0x00 {
                    return Err("unexpected reveal proof for an ed25519 key".into());
                }
                Op::Reveal { pk }
            }
            0x6e => Op::Delegation {
                delegate: match r.byte()? {
                    0x00 => None,
                    0xff => Some(r.pkh()?),
                    t => return Err(format!("bad option tag {t}")),
                },
            },
            0x6c => {
                let amount = r.z()?;
                let destination = match r.byte()? {
                    0x00 => r.pkh()?,
                    t => return Err(format!("unsupported destination tag {t}")),
                };
                let entrypoint = match r.byte()? {
                    0x00 => None,
                    0xff => {
                        let ep = r.byte()?;
                        let len = u32::from_be_bytes(r.take(4)?.try_into().map_err(|_| "len")?);
                        let value = r.take(len as usize)?;
                        if value != [0x03, 0x0b] {
                            return Err("staking entrypoints take Unit".into());
                        }
                        Some(ep)
                    }
                    t => return Err(format!("bad option tag {t}")),
                };
                Op::Transaction {
                    amount,
                    destination,
                    entrypoint,
                }
            }
            t => return Err(format!("unsupported operation tag 0x{t:02x}")),
        };
        out.push(Manager {
            source,
            fee,
            counter,
            gas_limit,
            storage_limit,
            op,
        });
    }
    if out.is_empty() {
        return Err("no contents".into());
    }
    Ok((branch, out))
}

fn cycle_of(cfg: &TestNodeConfig, level: i64) -> i64 {
    (level - 1) / cfg.blocks_per_cycle
}

impl TestNode {
    /// A node at level 1.
    pub fn new(cfg: TestNodeConfig) -> TestNode {
        let mut accounts: BTreeMap<String, Account> = cfg
            .accounts
            .iter()
            .map(|(a, b)| {
                (
                    a.clone(),
                    Account {
                        balance: *b,
                        ..Account::default()
                    },
                )
            })
            .collect();
        let bakers = cfg
            .bakers
            .iter()
            .map(|(b, accepts, capacity)| {
                accounts.entry(b.clone()).or_default().delegate = Some(b.clone());
                (
                    b.clone(),
                    Baker {
                        accepts: *accepts,
                        capacity: *capacity,
                    },
                )
            })
            .collect();
        let mut blocks = BTreeMap::new();
        blocks.insert(1, (block_hash(1), cfg.genesis_time));
        TestNode {
            inner: Arc::new(Mutex::new(Node {
                level: 1,
                blocks,
                accounts,
                bakers,
                mempool: Vec::new(),
                ops: BTreeMap::new(),
                balance_updates: BTreeMap::new(),
                cfg,
            })),
        }
    }

    fn st(&self) -> MutexGuard<'_, Node> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves the RPC on `addr`; returns the bound address.
    pub async fn serve(&self, addr: std::net::SocketAddr) -> std::io::Result<std::net::SocketAddr> {
        let app = axum::Router::new()
            .route("/chains/main/chain_id", get(chain_id))
            .route("/chains/main/blocks/{block}/header", get(header))
            .route(
                "/chains/main/blocks/{block}/helpers/current_level",
                get(current_level),
            )
            .route(
                "/chains/main/blocks/{block}/context/constants",
                get(constants),
            )
            .route(
                "/chains/main/blocks/{block}/context/contracts/{pkh}/{field}",
                get(contract),
            )
            .route(
                "/chains/main/blocks/{block}/context/delegates/{pkh}/{field}",
                get(delegate),
            )
            .route(
                "/chains/main/blocks/{block}/operations/{pass}",
                get(operations),
            )
            .route("/chains/main/blocks/{block}/metadata", get(metadata))
            .route(
                "/chains/main/blocks/{block}/helpers/scripts/simulate_operation",
                post(simulate),
            )
            .route("/injection/operation", post(inject))
            .with_state(self.clone());
        softstake_testnode::serve(app, addr).await
    }

    /// Bakes `n` blocks (including the mempool in the first).
    pub fn bake(&self, n: i64) {
        let mut s = self.st();
        for _ in 0..n {
            s.bake_one();
        }
    }

    /// Head level and time.
    pub fn head(&self) -> (i64, i64) {
        let s = self.st();
        (s.level, s.blocks[&s.level].1)
    }

    /// A plain transfer of `amount` from `from` to `to`, included next block
    /// (a baker's payout, or funding).
    pub fn payout(&self, from: &str, to: &str, amount: u128) {
        let mut s = self.st();
        let level = s.level + 1;
        if let Some(a) = s.accounts.get_mut(from) {
            a.balance = a.balance.saturating_sub(amount);
        }
        s.accounts.entry(to.to_owned()).or_default().balance += amount;
        let hash = forge::b58(
            prefix::OPERATION,
            &forge::blake2b_256(format!("payout{level}{from}{to}{amount}").as_bytes()),
        );
        s.ops.entry(level).or_default().push(Included {
            hash,
            contents: vec![json!({"kind": "transaction", "source": from, "destination": to, "amount": amount.to_string(),
                "metadata": {"operation_result": {"status": "applied"}}})],
        });
        s.bake_one();
    }

    /// Sets whether a baker accepts stakers.
    pub fn set_accepts_stakers(&self, baker: &str, accepts: bool) {
        if let Some(b) = self.st().bakers.get_mut(baker) {
            b.accepts = accepts;
        }
    }

    /// Spendable balance.
    pub fn balance(&self, pkh: &str) -> u128 {
        self.st().accounts.get(pkh).map_or(0, |a| a.balance)
    }

    /// Everything held: spendable + staked + unstake requests.
    pub fn holdings(&self, pkh: &str) -> u128 {
        self.st().accounts.get(pkh).map_or(0, |a| {
            a.balance + a.staked + a.unstake.iter().map(|(_, x)| x).sum::<u128>()
        })
    }

    /// Applied operations so far.
    pub fn applied_count(&self) -> usize {
        self.st()
            .ops
            .values()
            .flatten()
            .filter(|o| {
                o.contents
                    .iter()
                    .all(|c| c["metadata"]["operation_result"]["status"] == "applied")
            })
            .count()
    }
}

impl Node {
    fn bake_one(&mut self) {
        let level = self.level + 1;
        let t = self.blocks[&self.level].1 + self.cfg.block_secs;
        self.level = level;
        self.blocks.insert(level, (block_hash(level), t));
        let pool = std::mem::take(&mut self.mempool);
        for (hash, bytes) in pool {
            let contents = self.apply(&bytes);
            self.ops
                .entry(level)
                .or_default()
                .push(Included { hash, contents });
        }
        // Cycle end: staking rewards, auto-staked, with balance updates.
        if level % self.cfg.blocks_per_cycle == 0 {
            let mut updates = Vec::new();
            let ppm = self.cfg.reward_ppm_per_cycle;
            for (pkh, a) in &mut self.accounts {
                if a.staked > 0 {
                    let r = a.staked * ppm / 1_000_000;
                    if r > 0 {
                        a.staked += r;
                        let d = a.delegate.clone().unwrap_or_default();
                        updates.push(json!({"kind": "minted", "category": "baking rewards", "change": format!("-{r}"), "origin": "block"}));
                        updates.push(json!({"kind": "freezer", "category": "deposits", "staker": {"contract": pkh, "delegate": d}, "change": r.to_string(), "origin": "block"}));
                    }
                }
            }
            self.balance_updates.insert(level, updates);
        }
    }

    fn cycle(&self) -> i64 {
        cycle_of(&self.cfg, self.level)
    }

    /// Validates and applies an injected operation; returns the receipt
    /// contents. Invalid operations never reach a block (see `precheck`).
    fn apply(&mut self, bytes: &[u8]) -> Vec<Value> {
        let Ok((_, ms)) = decode(&bytes[..bytes.len() - 64]) else {
            return vec![];
        };
        let snapshot = self.accounts.clone();
        let mut out = Vec::new();
        let mut failed = false;
        for m in &ms {
            // Fees and counters are taken whatever happens.
            if let Some(a) = self.accounts.get_mut(&m.source) {
                a.balance -= m.fee;
                a.counter = m.counter;
            }
            let status = if failed {
                "skipped".to_owned()
            } else {
                match self.apply_one(m) {
                    Ok(()) => "applied".to_owned(),
                    Err(e) => {
                        failed = true;
                        tracing::debug!(error = %e, "operation failed");
                        "failed".to_owned()
                    }
                }
            };
            out.push(json!({"kind": kind_name(&m.op), "source": m.source, "counter": m.counter.to_string(),
                "metadata": {"operation_result": {"status": status, "consumed_milligas": "1000000"}}}));
        }
        if failed {
            // Backtrack the effects (not the fees and counters).
            let fees: Vec<(String, u128, u128)> = ms
                .iter()
                .map(|m| (m.source.clone(), m.fee, m.counter))
                .collect();
            self.accounts = snapshot;
            for (s, fee, counter) in fees {
                if let Some(a) = self.accounts.get_mut(&s) {
                    a.balance -= fee;
                    a.counter = counter;
                }
            }
            for c in &mut out {
                if c["metadata"]["operation_result"]["status"] == "applied" {
                    c["metadata"]["operation_result"]["status"] = json!("backtracked");
                }
            }
        }
        out
    }

    fn apply_one(&mut self, m: &Manager) -> Result<(), String> {
        let cycle = self.cycle();
        match &m.op {
            Op::Reveal { pk } => {
                let a = self.accounts.get_mut(&m.source).ok_or("no account")?;
                a.manager_key = Some(*pk);
            }
            Op::Delegation { delegate } => {
                if let Some(d) = delegate
                    && !self.bakers.contains_key(d)
                {
                    return Err(format!("{d} is not a registered delegate"));
                }
                let a = self.accounts.get_mut(&m.source).ok_or("no account")?;
                if a.delegate != *delegate && a.staked > 0 {
                    // Changing delegate unstakes everything.
                    let s = std::mem::take(&mut a.staked);
                    a.unstake.push((cycle, s));
                }
                a.delegate.clone_from(delegate);
            }
            Op::Transaction {
                amount,
                destination,
                entrypoint,
            } => {
                if *destination != m.source {
                    return Err("only staking calls to self are supported".into());
                }
                let staked_total: u128 = self.accounts.values().map(|a| a.staked).sum();
                let a = self.accounts.get_mut(&m.source).ok_or("no account")?;
                match entrypoint {
                    Some(0x06) => {
                        let d = a.delegate.clone().ok_or("staking needs a delegate")?;
                        let b = self.bakers.get(&d).ok_or("delegate is not a baker")?;
                        if !b.accepts {
                            return Err(format!("{d} does not accept external stakers"));
                        }
                        if staked_total + amount > b.capacity {
                            return Err(format!("{d} is over its staking capacity"));
                        }
                        if a.balance < *amount {
                            return Err("balance too low".into());
                        }
                        a.balance -= amount;
                        a.staked += amount;
                    }
                    Some(0x07) => {
                        let x = (*amount).min(a.staked);
                        a.staked -= x;
                        a.unstake.push((cycle, x));
                    }
                    Some(0x08) => {
                        let delay = self.cfg.unstake_delay_cycles;
                        let (done, rest): (Vec<_>, Vec<_>) =
                            a.unstake.iter().partition(|(c, _)| c + delay < cycle + 1);
                        a.balance += done.iter().map(|(_, x)| x).sum::<u128>();
                        a.unstake = rest;
                    }
                    _ => return Err("unsupported entrypoint".into()),
                }
            }
        }
        Ok(())
    }

    /// What the prevalidator checks before accepting an operation.
    fn precheck(&self, bytes: &[u8]) -> Result<(), String> {
        if bytes.len() < 64 + 32 {
            return Err("operation too short".into());
        }
        let (forged, sig) = bytes.split_at(bytes.len() - 64);
        let (branch, ms) = decode(forged)?;
        let branch_level = self
            .blocks
            .iter()
            .find(|(_, (h, _))| *h == branch)
            .map(|(l, _)| *l)
            .ok_or_else(|| format!("unknown branch {branch}"))?;
        if branch_level + TTL < self.level {
            return Err(format!("branch {branch} is outdated"));
        }
        let source = &ms[0].source;
        if ms.iter().any(|m| m.source != *source) {
            return Err("a batch must have one source".into());
        }
        let a = self
            .accounts
            .get(source)
            .ok_or_else(|| format!("{source} is empty"))?;
        let pending = self
            .mempool
            .iter()
            .filter(|(_, b)| decode(&b[..b.len() - 64]).is_ok_and(|(_, m)| m[0].source == *source))
            .count();
        if pending > 0 {
            return Err("only one manager operation per source and block".into());
        }
        let key = a.manager_key.or_else(|| match &ms[0].op {
            Op::Reveal { pk } => Some(*pk),
            _ => None,
        });
        let key = key.ok_or("the account's public key is not revealed")?;
        if forge::tz1_of(&key) != *source {
            return Err("the revealed key does not match the source".into());
        }
        let mut s = [0u8; 64];
        s.copy_from_slice(sig);
        if !verify_operation(&key, forged, &s) {
            return Err("invalid signature".into());
        }
        let mut counter = a.counter;
        let mut fees = 0u128;
        for m in &ms {
            counter += 1;
            if m.counter != counter {
                return Err(format!(
                    "counter {} not yet reached or in the past (expected {counter})",
                    m.counter
                ));
            }
            if m.gas_limit == 0 {
                return Err("gas limit 0".into());
            }
            fees += m.fee;
            let _ = m.storage_limit;
        }
        if fees > a.balance {
            return Err("balance too low for the fees".into());
        }
        Ok(())
    }
}

fn kind_name(op: &Op) -> &'static str {
    match op {
        Op::Reveal { .. } => "reveal",
        Op::Delegation { .. } => "delegation",
        Op::Transaction { .. } => "transaction",
    }
}

fn level_of(s: &Node, block: &str) -> Option<i64> {
    if block == "head" {
        return Some(s.level);
    }
    if let Ok(l) = block.parse::<i64>() {
        return (l >= 1 && l <= s.level).then_some(l);
    }
    s.blocks
        .iter()
        .find(|(_, (h, _))| h == block)
        .map(|(l, _)| *l)
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!([{"kind": "temporary", "id": "not_found"}])),
    )
        .into_response()
}

fn rfc3339(t: i64) -> String {
    softstake_core::Timestamp::from_unix(t).to_string()
}

async fn chain_id(State(n): State<TestNode>) -> Json<Value> {
    Json(json!(n.st().cfg.chain_id))
}

async fn header(State(n): State<TestNode>, Path(block): Path<String>) -> Response {
    let s = n.st();
    let Some(l) = level_of(&s, &block) else {
        return not_found();
    };
    let (hash, t) = &s.blocks[&l];
    Json(json!({"hash": hash, "level": l, "timestamp": rfc3339(*t), "chain_id": s.cfg.chain_id}))
        .into_response()
}

async fn current_level(State(n): State<TestNode>) -> Json<Value> {
    let s = n.st();
    Json(
        json!({"level": s.level, "cycle": s.cycle(), "cycle_position": (s.level - 1) % s.cfg.blocks_per_cycle}),
    )
}

async fn constants(State(n): State<TestNode>) -> Json<Value> {
    let s = n.st();
    Json(json!({
        "blocks_per_cycle": s.cfg.blocks_per_cycle,
        "minimal_block_delay": s.cfg.block_secs.to_string(),
        "unstake_finalization_delay": s.cfg.unstake_delay_cycles,
        "max_operations_time_to_live": TTL,
        "hard_gas_limit_per_operation": "1040000",
        "cost_per_byte": "250",
    }))
}

async fn contract(
    State(n): State<TestNode>,
    Path((_b, pkh, field)): Path<(String, String, String)>,
) -> Response {
    let s = n.st();
    let a = s.accounts.get(&pkh).cloned().unwrap_or_default();
    let delay = s.cfg.unstake_delay_cycles;
    let cycle = s.cycle();
    match field.as_str() {
        "balance" => Json(json!(a.balance.to_string())).into_response(),
        "counter" => Json(json!(a.counter.to_string())).into_response(),
        "staked_balance" => Json(json!(a.staked.to_string())).into_response(),
        "manager_key" => Json(
            a.manager_key
                .map_or(Value::Null, |k| json!(forge::b58(prefix::EDPK, &k))),
        )
        .into_response(),
        "delegate" => match a.delegate {
            Some(d) => Json(json!(d)).into_response(),
            None => not_found(),
        },
        "unstake_requests" => {
            if a.unstake.is_empty() {
                return Json(Value::Null).into_response();
            }
            let d = a.delegate.clone().unwrap_or_default();
            let (fin, unfin): (Vec<_>, Vec<_>) =
                a.unstake.iter().partition(|(c, _)| c + delay < cycle + 1);
            Json(json!({
                "finalizable": fin.iter().map(|(c, x)| json!({"delegate": d, "cycle": c, "amount": x.to_string()})).collect::<Vec<_>>(),
                "unfinalizable": {"delegate": d, "requests": unfin.iter().map(|(c, x)| json!({"cycle": c, "amount": x.to_string()})).collect::<Vec<_>>()},
            }))
            .into_response()
        }
        _ => not_found(),
    }
}

async fn delegate(
    State(n): State<TestNode>,
    Path((_b, pkh, field)): Path<(String, String, String)>,
) -> Response {
    let s = n.st();
    let Some(b) = s.bakers.get(&pkh) else {
        return not_found();
    };
    let staked: u128 = s.accounts.values().map(|a| a.staked).sum();
    match field.as_str() {
        "active_staking_parameters" => Json(json!({
            "limit_of_staking_over_baking_millionth": if b.accepts { 5_000_000 } else { 0 },
            "edge_of_baking_over_staking_billionth": 100_000_000,
        }))
        .into_response(),
        // The baker's own stake: capacity / 5 at the 5x limit above.
        "own_staked" => Json(json!((b.capacity / 5).to_string())).into_response(),
        "external_staked" => Json(json!(staked.to_string())).into_response(),
        "deactivated" => Json(json!(false)).into_response(),
        _ => not_found(),
    }
}

async fn operations(
    State(n): State<TestNode>,
    Path((block, pass)): Path<(String, String)>,
) -> Response {
    let s = n.st();
    let Some(l) = level_of(&s, &block) else {
        return not_found();
    };
    if pass != "3" {
        return Json(json!([])).into_response();
    }
    let ops: Vec<Value> = s
        .ops
        .get(&l)
        .map(|v| v.iter().map(|o| json!({"hash": o.hash, "branch": s.blocks[&(l - 1).max(1)].0, "contents": o.contents})).collect())
        .unwrap_or_default();
    Json(json!(ops)).into_response()
}

async fn metadata(State(n): State<TestNode>, Path(block): Path<String>) -> Response {
    let s = n.st();
    let Some(l) = level_of(&s, &block) else {
        return not_found();
    };
    let c = cycle_of(&s.cfg, l);
    Json(json!({
        "level_info": {"level": l, "cycle": c, "cycle_position": (l - 1) % s.cfg.blocks_per_cycle},
        "balance_updates": s.balance_updates.get(&l).cloned().unwrap_or_default(),
    }))
    .into_response()
}

async fn simulate(State(n): State<TestNode>, Json(body): Json<Value>) -> Response {
    // Simulation: the protocol would apply these contents; report gas.
    let contents = body["operation"]["contents"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let s = n.st();
    let mut out = Vec::new();
    for c in contents {
        let mut c = c.clone();
        let mut status = "applied";
        if c["kind"] == "delegation"
            && let Some(d) = c["delegate"].as_str()
            && !s.bakers.contains_key(d)
        {
            status = "failed";
        }
        c["metadata"] =
            json!({"operation_result": {"status": status, "consumed_milligas": "1000000"}});
        out.push(c);
    }
    Json(json!({"contents": out})).into_response()
}

async fn inject(State(n): State<TestNode>, Json(hex_body): Json<Value>) -> Response {
    let Some(bytes) = hex_body.as_str().and_then(|h| hex::decode(h).ok()) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!([{"kind": "permanent", "id": "failure", "msg": "body must be a hex string"}]),
            ),
        )
            .into_response();
    };
    let mut s = n.st();
    if let Err(e) = s.precheck(&bytes) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!([{"kind": "permanent", "id": "validate_error", "msg": e}])),
        )
            .into_response();
    }
    let hash = forge::operation_hash(&bytes);
    s.mempool.push((hash.clone(), bytes));
    Json(json!(hash)).into_response()
}
