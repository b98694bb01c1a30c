//! A Tezos test node in octez's shapes (no octez binaries install here).
//!
//! It serves the Octez RPC paths the adapter calls with the JSON shapes
//! octez produces (checked against octez's RPC regression outputs and
//! Taquito's recorded responses in tests/fixtures/xtz), and processes
//! injected operations like the protocol does, with its own binary decoder
//! (not the adapter's forger):
//! - the branch must be a block of the last `max_operations_time_to_live`
//!   levels; the signature must verify (ed25519, blake2b-256 of 0x03 ||
//!   forged) against the manager key, revealed before or earlier in the same
//!   group; each manager operation's counter must be the account's next one;
//!   the fees must be covered by the spendable balance;
//! - reveal, delegation (set/remove; the baker must be registered; a change
//!   of delegate unstakes everything), and the staking pseudo-operations:
//!   `stake` (needs a delegate that accepts stakers, within its limit),
//!   `unstake` (a request for the current cycle, finalizable from cycle n +
//!   `unstake_delay_cycles` + 1), `finalize_unstake`; stake and unstake
//!   finalize what is finalizable first, as the protocol does;
//! - external stake is held as pseudotokens over each baker's stakers'
//!   pool: `staked_balance` is the account's share of the pool, so a reward
//!   credited to the pool shows only as growth of it, never per staker;
//! - receipts carry octez's balance updates: fees, `deposits` with
//!   `{"staker":{"contract","delegate"}}`, `unstaked_deposits` with a cycle;
//! - operations are included at the next block ([`TestNode::bake`]); at each
//!   cycle end the baker's rewards are credited to its stakers' pool
//!   (`{"staker":{"delegate"}}`), its own stake (`baker_own_stake`) and its
//!   edge (`baker_edge`), and a pending slash ([`TestNode::slash`]) takes
//!   its share of the pool (origin `delayed_operation`);
//! - cycles follow eras: [`TestNodeConfig::protocol_change`] changes the
//!   cycle length and block time from a cycle on, as a protocol upgrade
//!   does; `helpers/current_level` and `levels_in_current_cycle` answer by
//!   the eras;
//! - every block keeps the state after it, so context RPCs answer at any
//!   block; [`TestNode::prune_before`] drops old blocks as a rolling node
//!   does;
//! - a baker's payout address can pay delegators ([`TestNode::payout`]),
//!   a plain transaction found by scanning blocks.

use crate::forge::{self, prefix};
use crate::keys::verify_operation;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// A protocol upgrade's new cycle length and block time.
#[derive(Debug, Clone, Copy)]
pub struct ProtocolChange {
    /// First cycle of the new protocol.
    pub at_cycle: i64,
    /// Blocks per cycle from then on.
    pub blocks_per_cycle: i64,
    /// Seconds per block from then on.
    pub block_secs: i64,
}

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
    /// `unstake_finalization_delay`: a request of cycle n is finalizable
    /// from cycle n + this + 1.
    pub unstake_delay_cycles: i64,
    /// Rewards per cycle, parts per million of what is staked (the
    /// stakers' pool and the baker's own stake).
    pub reward_ppm_per_cycle: u128,
    /// Bakers: (tz1, accepts stakers, most external stake in mutez).
    pub bakers: Vec<(String, bool, u128)>,
    /// Funded implicit accounts (tz1, mutez).
    pub accounts: Vec<(String, u128)>,
    /// A protocol upgrade changing cycle length and block time.
    pub protocol_change: Option<ProtocolChange>,
}

impl TestNodeConfig {
    /// The small chain the tests run: 8 blocks of 8 s per cycle from
    /// 2026-01-01, unstake delay 2, 200 ppm a cycle, no protocol change.
    pub fn small(bakers: Vec<(String, bool, u128)>, accounts: Vec<(String, u128)>) -> Self {
        TestNodeConfig {
            chain_id: "NetXsoftstake1".into(),
            genesis_time: 1_767_225_600,
            block_secs: 8,
            blocks_per_cycle: 8,
            unstake_delay_cycles: 2,
            reward_ppm_per_cycle: 200,
            bakers,
            accounts,
            protocol_change: None,
        }
    }
}

const TTL: i64 = 240;
/// Bakers' edge on their stakers' rewards, in billionths (10%).
const EDGE_BILLIONTH: u128 = 100_000_000;
/// External stake a baker accepts, in millionths of its own (5x).
const LIMIT_MILLIONTH: u128 = 5_000_000;

#[derive(Debug, Clone, Default)]
struct Account {
    balance: u128,
    counter: u128,
    manager_key: Option<[u8; 32]>,
    delegate: Option<String>,
    /// Share of the delegate's stakers' pool.
    pseudotokens: u128,
    /// (cycle requested, amount).
    unstake: Vec<(i64, u128)>,
}

#[derive(Debug, Clone)]
struct Baker {
    accepts: bool,
    /// Its own staked funds.
    own: u128,
    /// Its stakers' pool: tez and the pseudotokens issued over it.
    frozen: u128,
    denominator: u128,
}

impl Baker {
    fn value_of(&self, pt: u128) -> u128 {
        (pt * self.frozen)
            .checked_div(self.denominator)
            .unwrap_or(0)
    }
}

#[derive(Debug, Clone)]
struct Included {
    hash: String,
    contents: Vec<Value>,
}

/// What context RPCs read at a block.
#[derive(Debug, Clone)]
struct Context {
    accounts: BTreeMap<String, Account>,
    bakers: BTreeMap<String, Baker>,
}

#[derive(Debug)]
struct Node {
    cfg: TestNodeConfig,
    level: i64,
    blocks: BTreeMap<i64, (String, i64)>,
    accounts: BTreeMap<String, Account>,
    bakers: BTreeMap<String, Baker>,
    history: BTreeMap<i64, Context>,
    pruned_before: i64,
    mempool: Vec<(String, Vec<u8>)>,
    ops: BTreeMap<i64, Vec<Included>>,
    balance_updates: BTreeMap<i64, Vec<Value>>,
    /// Slashes applied at the next cycle end: (baker, parts per million).
    slashes: Vec<(String, u128)>,
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

/// octez's published RPC documents (tests/fixtures/xtz/SOURCES.md): the
/// protocol mainnet runs (Ushuaia, under `/chains/{chain}/blocks/{block}`)
/// and the shell. Every answer the test node serves is checked against
/// them.
pub fn octez_api() -> softstake_testnode::openapi::Api {
    use softstake_testnode::openapi::{Api, Document};
    static API: std::sync::OnceLock<Api> = std::sync::OnceLock::new();
    Api::pinned(&API, || {
        Ok(vec![
            Document::new(
                "octez ushuaia-openapi.json",
                "/chains/{chain_id}/blocks/{block_id}",
                include_str!("../../../tests/fixtures/xtz/octez/ushuaia-openapi.json"),
            )?
            // octez's generator writes the shell wrappers of `/header` and
            // `/operations` with the genesis protocol's types (`"protocol":
            // ProtoGenesis`, a genesis `content`, operations open to any
            // field): not what a node sends for Ushuaia blocks. Checked
            // instead against the protocol's own components, as octez
            // assembles them: shell fields plus the protocol's full header,
            // and operations whose contents are Ushuaia's.
            .retarget(
                "/header",
                "the published schema is the genesis protocol's header",
                header_schema,
            )
            .retarget(
                "/metadata",
                "the published schema is the genesis protocol's block metadata",
                metadata_schema,
            )
            .retarget(
                "/operations/{list_offset}",
                "the published schema is the genesis protocol's operation",
                |_| json!({"type": "array", "items": operation_schema()}),
            ),
            Document::new(
                "octez rpc-openapi.json",
                "",
                include_str!("../../../tests/fixtures/xtz/octez/rpc-openapi.json"),
            )?,
        ])
    })
}

/// The protocol mainnet runs (as of late 2026), named in answers.
pub const PROTOCOL: &str = "PsUshuai9QapM5TGj1JpuVGkdxz5GykdnEvS6Rh8SUVrARvZLCY";
const RECORDED_MISC: &str = include_str!("../../../tests/fixtures/xtz/octez/misc_protocol.out");
const RECORDED_DELEGATES: &str = include_str!("../../../tests/fixtures/xtz/octez/delegates.out");

/// The JSON octez-client printed for `rpc get <path>` in a tezt regression
/// output (tests/fixtures/xtz/octez), the first time that command appears.
pub fn octez_recorded(text: &str, path: &str) -> Option<Value> {
    let wanted = [
        format!("./octez-client rpc get {path}"),
        format!("./octez-client rpc get '{path}'"),
    ];
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if wanted.iter().any(|w| w == l) {
            let body: Vec<&str> = lines.by_ref().take_while(|l| !l.is_empty()).collect();
            return serde_json::from_str(&body.join("\n")).ok();
        }
    }
    None
}

/// Replaces tezt's placeholders in a recorded answer.
fn fill(v: &mut Value, pkh: &str) {
    match v {
        Value::String(s) if s == "[PUBLIC_KEY_HASH]" => *s = pkh.to_owned(),
        Value::String(s) if s == "[PUBLIC_KEY]" => {
            *s = forge::b58(prefix::EDPK, &forge::blake2b_256(pkh.as_bytes()));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| fill(x, pkh)),
        Value::Object(o) => o.values_mut().for_each(|x| fill(x, pkh)),
        _ => {}
    }
}

/// A block header as octez sends it: shell fields and Ushuaia's full header.
fn header_schema(doc: &Value) -> Value {
    let mut s = doc["components"]["schemas"]["025-PsUshuai.block_header.alpha.full_header"].clone();
    s["properties"]["protocol"] = json!({"type": "string", "enum": [PROTOCOL]});
    s["properties"]["chain_id"] = json!({"$ref": "#/components/schemas/Chain_id"});
    s["properties"]["hash"] = json!({"$ref": "#/components/schemas/block_hash"});
    if let Some(r) = s["required"].as_array_mut() {
        r.extend([json!("protocol"), json!("chain_id"), json!("hash")]);
    }
    s
}

/// Block metadata as octez sends it for Ushuaia blocks: the shell part,
/// the block's own protocol, and the protocol's level info and balance
/// updates (the fields softstake reads; the rest stay open, as published),
/// with the balance-update origins octez documents.
fn metadata_schema(doc: &Value) -> Value {
    let mut s = doc["components"]["schemas"]["block_header_metadata"].clone();
    s["properties"]["protocol"] = json!({"type": "string", "enum": [PROTOCOL]});
    s["properties"]["level_info"] =
        doc["paths"]["/helpers/current_level"]["get"]["responses"]["200"]["content"]
            ["application/json"]["schema"]
            .clone();
    // The published balance updates allow only `"origin": "block"`; octez
    // also writes `migration`, `subsidy`, `simulation` and, for slashing
    // at a cycle's end, `delayed_operation` with the denunciation's
    // `delayed_operation_hash` (docs/alpha/token_management.rst). Each
    // alternative is kept, with the documented origins.
    let mut bu =
        doc["components"]["schemas"]["025-PsUshuai.operation_metadata.alpha.balance_updates"]
            .clone();
    for alt in bu["items"]["oneOf"].as_array_mut().into_iter().flatten() {
        alt["properties"]["origin"] = json!({"type": "string",
            "enum": ["block", "migration", "subsidy", "simulation", "delayed_operation"]});
        alt["properties"]["delayed_operation_hash"] =
            json!({"$ref": "#/components/schemas/Operation_hash"});
    }
    s["properties"]["balance_updates"] = bu;
    s
}

/// An operation with its receipts as octez sends it for Ushuaia blocks.
fn operation_schema() -> Value {
    json!({"type": "object", "properties": {
        "protocol": {"type": "string", "enum": [PROTOCOL]},
        "chain_id": {"$ref": "#/components/schemas/Chain_id"},
        "hash": {"$ref": "#/components/schemas/Operation_hash"},
        "branch": {"$ref": "#/components/schemas/block_hash"},
        "contents": {"type": "array", "items":
            {"$ref": "#/components/schemas/025-PsUshuai.operation.alpha.operation_contents_and_result"}},
        "signature": {"$ref": "#/components/schemas/Signature.V3"}},
        "required": ["protocol", "chain_id", "hash", "branch", "contents"]})
}

/// Cycle eras: (first level, first cycle, blocks per cycle, block secs).
fn eras(cfg: &TestNodeConfig) -> Vec<(i64, i64, i64, i64)> {
    let mut e = vec![(1, 0, cfg.blocks_per_cycle, cfg.block_secs)];
    if let Some(p) = cfg.protocol_change {
        e.push((
            1 + p.at_cycle * cfg.blocks_per_cycle,
            p.at_cycle,
            p.blocks_per_cycle,
            p.block_secs,
        ));
    }
    e
}

fn era_of_level(cfg: &TestNodeConfig, level: i64) -> (i64, i64, i64, i64) {
    eras(cfg)
        .into_iter()
        .rev()
        .find(|e| level >= e.0)
        .unwrap_or((1, 0, cfg.blocks_per_cycle, cfg.block_secs))
}

fn cycle_of(cfg: &TestNodeConfig, level: i64) -> i64 {
    let (first, c0, bpc, _) = era_of_level(cfg, level);
    c0 + (level - first) / bpc
}

/// First and last level of a cycle.
fn cycle_levels(cfg: &TestNodeConfig, cycle: i64) -> (i64, i64) {
    let (first, c0, bpc, _) = eras(cfg)
        .into_iter()
        .rev()
        .find(|e| cycle >= e.1)
        .unwrap_or((1, 0, cfg.blocks_per_cycle, cfg.block_secs));
    let f = first + (cycle - c0) * bpc;
    (f, f + bpc - 1)
}

fn level_info(cfg: &TestNodeConfig, level: i64) -> Value {
    let c = cycle_of(cfg, level);
    json!({"level": level, "level_position": level - 1, "cycle": c,
        "cycle_position": level - cycle_levels(cfg, c).0, "expected_commitment": false})
}

fn bu(kind: &str, extra: Value, change: i128) -> Value {
    let mut v = json!({"kind": kind, "change": change.to_string(), "origin": "block"});
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in e {
            o.insert(k.clone(), x.clone());
        }
    }
    v
}

fn signed(x: u128) -> i128 {
    i128::try_from(x).unwrap_or(i128::MAX)
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
        let bakers: BTreeMap<String, Baker> = cfg
            .bakers
            .iter()
            .map(|(b, accepts, capacity)| {
                accounts.entry(b.clone()).or_default().delegate = Some(b.clone());
                (
                    b.clone(),
                    Baker {
                        accepts: *accepts,
                        own: capacity * 1_000_000 / LIMIT_MILLIONTH,
                        frozen: 0,
                        denominator: 0,
                    },
                )
            })
            .collect();
        let mut blocks = BTreeMap::new();
        blocks.insert(1, (block_hash(1), cfg.genesis_time));
        let mut history = BTreeMap::new();
        history.insert(
            1,
            Context {
                accounts: accounts.clone(),
                bakers: bakers.clone(),
            },
        );
        TestNode {
            inner: Arc::new(Mutex::new(Node {
                level: 1,
                blocks,
                accounts,
                bakers,
                history,
                pruned_before: 1,
                mempool: Vec::new(),
                ops: BTreeMap::new(),
                balance_updates: BTreeMap::new(),
                slashes: Vec::new(),
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
                "/chains/main/blocks/{block}/helpers/levels_in_current_cycle",
                get(levels_in_current_cycle),
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
                "/chains/main/blocks/{block}/context/delegates/{pkh}",
                get(delegate_info),
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
            .with_state(self.clone())
            .layer(axum::middleware::from_fn(|req, next| {
                octez_api().conform(req, next)
            }));
        softstake_testnode::serve(app, addr).await
    }

    /// Bakes `n` blocks (including the mempool in the first).
    pub fn bake(&self, n: i64) {
        let mut s = self.st();
        for _ in 0..n {
            s.bake_one();
        }
    }

    /// Bakes up to and including the last block of the current cycle.
    pub fn bake_to_cycle_end(&self) {
        let (level, last) = {
            let s = self.st();
            let c = cycle_of(&s.cfg, s.level);
            (s.level, cycle_levels(&s.cfg, c).1)
        };
        self.bake((last - level).max(0));
    }

    /// Head level and time.
    pub fn head(&self) -> (i64, i64) {
        let s = self.st();
        (s.level, s.blocks[&s.level].1)
    }

    /// The timestamp of a block.
    pub fn block_time(&self, level: i64) -> Option<i64> {
        self.st().blocks.get(&level).map(|b| b.1)
    }

    /// First and last level of a cycle, by the node's eras.
    pub fn cycle_levels(&self, cycle: i64) -> (i64, i64) {
        cycle_levels(&self.st().cfg, cycle)
    }

    /// The cycle of the head.
    pub fn cycle(&self) -> i64 {
        let s = self.st();
        cycle_of(&s.cfg, s.level)
    }

    /// A plain transfer of `amount` from `from` to `to`, included next block
    /// (a baker's payout, or funding); its operation hash.
    pub fn payout(&self, from: &str, to: &str, amount: u128) -> String {
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
        let x = signed(amount);
        s.ops.entry(level).or_default().push(Included {
            hash: hash.clone(),
            contents: vec![json!({"kind": "transaction", "source": from, "fee": "0", "counter": "1",
                "gas_limit": "169", "storage_limit": "0", "destination": to, "amount": amount.to_string(),
                "metadata": {"balance_updates": [], "operation_result": {"status": "applied", "consumed_milligas": "168512", "balance_updates": [
                    bu("contract", json!({"contract": from}), -x), bu("contract", json!({"contract": to}), x)]}}})],
        });
        s.bake_one();
        hash
    }

    /// Sets whether a baker accepts stakers.
    pub fn set_accepts_stakers(&self, baker: &str, accepts: bool) {
        if let Some(b) = self.st().bakers.get_mut(baker) {
            b.accepts = accepts;
        }
    }

    /// Slashes `ppm` parts per million of a baker's stake (own and its
    /// stakers' pool) at the next cycle end, as a denunciation does.
    pub fn slash(&self, baker: &str, ppm: u128) {
        self.st().slashes.push((baker.to_owned(), ppm));
    }

    /// Drops every block before `level` (headers, operations, metadata and
    /// context), as a node in rolling history mode does.
    pub fn prune_before(&self, level: i64) {
        let mut s = self.st();
        s.pruned_before = level;
        s.history.retain(|l, _| *l >= level);
    }

    /// Spendable balance.
    pub fn balance(&self, pkh: &str) -> u128 {
        self.st().accounts.get(pkh).map_or(0, |a| a.balance)
    }

    /// The account's staked balance (its share of its delegate's pool).
    pub fn staked(&self, pkh: &str) -> u128 {
        let s = self.st();
        s.staked_of(&s.accounts, &s.bakers, pkh)
    }

    /// Everything held: spendable + staked + unstake requests.
    pub fn holdings(&self, pkh: &str) -> u128 {
        let s = self.st();
        s.accounts.get(pkh).map_or(0, |a| {
            a.balance
                + s.staked_of(&s.accounts, &s.bakers, pkh)
                + a.unstake.iter().map(|(_, x)| x).sum::<u128>()
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
    fn staked_of(
        &self,
        accounts: &BTreeMap<String, Account>,
        bakers: &BTreeMap<String, Baker>,
        pkh: &str,
    ) -> u128 {
        let Some(a) = accounts.get(pkh) else {
            return 0;
        };
        a.delegate
            .as_ref()
            .and_then(|d| bakers.get(d))
            .map_or(0, |b| b.value_of(a.pseudotokens))
    }

    fn bake_one(&mut self) {
        let level = self.level + 1;
        let secs = era_of_level(&self.cfg, level).3;
        let t = self.blocks[&self.level].1 + secs;
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
        let cycle = cycle_of(&self.cfg, level);
        if level == cycle_levels(&self.cfg, cycle).1 {
            let updates = self.cycle_end();
            self.balance_updates.insert(level, updates);
        }
        self.history.insert(
            level,
            Context {
                accounts: self.accounts.clone(),
                bakers: self.bakers.clone(),
            },
        );
    }

    /// Rewards and slashes at a cycle's last block, in octez's shapes.
    fn cycle_end(&mut self) -> Vec<Value> {
        let mut updates = Vec::new();
        let ppm = self.cfg.reward_ppm_per_cycle;
        let slashes = std::mem::take(&mut self.slashes);
        for (pkh, b) in &mut self.bakers {
            let pool = b.frozen * ppm / 1_000_000;
            let edge = pool * EDGE_BILLIONTH / 1_000_000_000;
            let own = b.own * ppm / 1_000_000;
            for (x, staker) in [
                (own, json!({"baker_own_stake": pkh})),
                (pool - edge, json!({"delegate": pkh})),
                (edge, json!({"baker_edge": pkh})),
            ] {
                if x > 0 {
                    updates.push(bu(
                        "minted",
                        json!({"category": "attesting rewards"}),
                        -signed(x),
                    ));
                    updates.push(bu(
                        "freezer",
                        json!({"category": "deposits", "staker": staker}),
                        signed(x),
                    ));
                }
            }
            b.own += own + edge;
            b.frozen += pool - edge;
            for (who, sppm) in slashes.iter().filter(|(w, _)| w == pkh) {
                let hash = forge::b58(
                    prefix::OPERATION,
                    &forge::blake2b_256(format!("denunciation{who}{sppm}").as_bytes()),
                );
                for (x, staker) in [
                    (b.own * sppm / 1_000_000, json!({"baker_own_stake": pkh})),
                    (b.frozen * sppm / 1_000_000, json!({"delegate": pkh})),
                ] {
                    if x > 0 {
                        let mut d = bu(
                            "freezer",
                            json!({"category": "deposits", "staker": staker}),
                            -signed(x),
                        );
                        let mut p = bu("burned", json!({"category": "punishments"}), signed(x));
                        for v in [&mut d, &mut p] {
                            v["origin"] = json!("delayed_operation");
                            v["delayed_operation_hash"] = json!(hash);
                        }
                        updates.push(d);
                        updates.push(p);
                    }
                }
                b.own -= b.own * sppm / 1_000_000;
                b.frozen -= b.frozen * sppm / 1_000_000;
            }
        }
        updates
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
        let snapshot = (self.accounts.clone(), self.bakers.clone());
        let mut out = Vec::new();
        let mut failed = false;
        for m in &ms {
            // Fees and counters are taken whatever happens.
            if let Some(a) = self.accounts.get_mut(&m.source) {
                a.balance -= m.fee;
                a.counter = m.counter;
            }
            let fee = signed(m.fee);
            let fees = vec![
                bu("contract", json!({"contract": m.source}), -fee),
                bu("accumulator", json!({"category": "block fees"}), fee),
            ];
            let (status, updates) = if failed {
                ("skipped", Vec::new())
            } else {
                match self.apply_one(m) {
                    Ok(u) => ("applied", u),
                    Err(e) => {
                        failed = true;
                        tracing::debug!(error = %e, "operation failed");
                        ("failed", Vec::new())
                    }
                }
            };
            let mut c = json!({"kind": kind_name(&m.op), "source": m.source, "fee": m.fee.to_string(),
                "counter": m.counter.to_string(), "gas_limit": m.gas_limit.to_string(),
                "storage_limit": m.storage_limit.to_string(),
                "metadata": {"balance_updates": fees,
                    "operation_result": {"status": status}}});
            match &m.op {
                Op::Reveal { pk } => c["public_key"] = json!(forge::b58(prefix::EDPK, pk)),
                Op::Delegation { delegate: Some(d) } => c["delegate"] = json!(d),
                Op::Delegation { delegate: None } => {}
                Op::Transaction {
                    amount,
                    destination,
                    entrypoint,
                } => {
                    c["amount"] = json!(amount.to_string());
                    c["destination"] = json!(destination);
                    if let Some(e) = entrypoint {
                        let name = match e {
                            0x06 => "stake",
                            0x07 => "unstake",
                            0x08 => "finalize_unstake",
                            _ => "default",
                        };
                        c["parameters"] = json!({"entrypoint": name, "value": {"prim": "Unit"}});
                    }
                }
            }
            if status == "applied" || status == "backtracked" {
                c["metadata"]["operation_result"]["consumed_milligas"] = json!("1000000");
            }
            if !updates.is_empty() {
                c["metadata"]["operation_result"]["balance_updates"] = json!(updates);
            }
            out.push(c);
        }
        if failed {
            // Backtrack the effects (not the fees and counters).
            let fees: Vec<(String, u128, u128)> = ms
                .iter()
                .map(|m| (m.source.clone(), m.fee, m.counter))
                .collect();
            (self.accounts, self.bakers) = snapshot;
            for (s, fee, counter) in fees {
                if let Some(a) = self.accounts.get_mut(&s) {
                    a.balance -= fee;
                    a.counter = counter;
                }
            }
            for c in &mut out {
                let r = &mut c["metadata"]["operation_result"];
                if r["status"] == "applied" {
                    r["status"] = json!("backtracked");
                    if let Some(o) = r.as_object_mut() {
                        o.remove("balance_updates");
                    }
                }
            }
        }
        out
    }

    /// Moves what is finalizable back to the spendable balance.
    fn finalize(&mut self, who: &str, updates: &mut Vec<Value>) {
        let (cycle, delay) = (self.cycle(), self.cfg.unstake_delay_cycles);
        let Some(a) = self.accounts.get_mut(who) else {
            return;
        };
        let d = a.delegate.clone().unwrap_or_default();
        let (done, rest): (Vec<_>, Vec<_>) = a.unstake.iter().partition(|(c, _)| c + delay < cycle);
        for (c, x) in &done {
            a.balance += x;
            updates.push(bu(
                "freezer",
                json!({"category": "unstaked_deposits", "staker": {"contract": who, "delegate": d}, "cycle": c}),
                -signed(*x),
            ));
            updates.push(bu("contract", json!({"contract": who}), signed(*x)));
        }
        a.unstake = rest;
    }

    /// Takes `tez` (at most the whole share) out of `who`'s pool share into
    /// an unstake request of the current cycle.
    fn unstake(&mut self, who: &str, tez: u128, updates: &mut Vec<Value>) {
        let cycle = self.cycle();
        let Some(a) = self.accounts.get(who).cloned() else {
            return;
        };
        let Some(d) = a.delegate.clone() else {
            return;
        };
        let Some(b) = self.bakers.get_mut(&d) else {
            return;
        };
        let held = b.value_of(a.pseudotokens);
        let (pt, x) = if tez >= held {
            (a.pseudotokens, held)
        } else {
            let pt = tez * b.denominator / b.frozen.max(1);
            (pt, b.value_of(pt))
        };
        if x == 0 {
            return;
        }
        b.frozen -= x;
        b.denominator -= pt;
        if let Some(a) = self.accounts.get_mut(who) {
            a.pseudotokens -= pt;
            match a.unstake.iter_mut().find(|(c, _)| *c == cycle) {
                Some(r) => r.1 += x,
                None => a.unstake.push((cycle, x)),
            }
        }
        updates.push(bu(
            "staking",
            json!({"category": "delegate_denominator", "delegate": d}),
            -signed(pt),
        ));
        updates.push(bu(
            "staking",
            json!({"category": "delegator_numerator", "delegator": who}),
            -signed(pt),
        ));
        updates.push(bu(
            "freezer",
            json!({"category": "deposits", "staker": {"contract": who, "delegate": d}}),
            -signed(x),
        ));
        updates.push(bu(
            "freezer",
            json!({"category": "unstaked_deposits", "staker": {"contract": who, "delegate": d}, "cycle": cycle}),
            signed(x),
        ));
    }

    fn apply_one(&mut self, m: &Manager) -> Result<Vec<Value>, String> {
        let mut updates = Vec::new();
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
                let a = self.accounts.get(&m.source).ok_or("no account")?;
                if a.delegate != *delegate && a.pseudotokens > 0 {
                    // Changing delegate unstakes everything.
                    self.unstake(&m.source, u128::MAX, &mut updates);
                }
                let a = self.accounts.get_mut(&m.source).ok_or("no account")?;
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
                match entrypoint {
                    Some(0x06) => {
                        self.finalize(&m.source, &mut updates);
                        let a = self.accounts.get(&m.source).ok_or("no account")?.clone();
                        let d = a.delegate.clone().ok_or("staking needs a delegate")?;
                        let b = self.bakers.get_mut(&d).ok_or("delegate is not a baker")?;
                        if !b.accepts {
                            return Err(format!("{d} does not accept external stakers"));
                        }
                        if b.frozen + amount > b.own * LIMIT_MILLIONTH / 1_000_000 {
                            return Err(format!("{d} is over its staking limit"));
                        }
                        if a.balance < *amount {
                            return Err("balance too low".into());
                        }
                        let pt = if b.denominator == 0 {
                            *amount
                        } else {
                            amount * b.denominator / b.frozen
                        };
                        b.frozen += amount;
                        b.denominator += pt;
                        let a = self.accounts.get_mut(&m.source).ok_or("no account")?;
                        a.balance -= amount;
                        a.pseudotokens += pt;
                        let x = signed(*amount);
                        updates.push(bu("contract", json!({"contract": m.source}), -x));
                        updates.push(bu(
                            "freezer",
                            json!({"category": "deposits", "staker": {"contract": m.source, "delegate": d}}),
                            x,
                        ));
                        updates.push(bu(
                            "staking",
                            json!({"category": "delegator_numerator", "delegator": m.source}),
                            signed(pt),
                        ));
                        updates.push(bu(
                            "staking",
                            json!({"category": "delegate_denominator", "delegate": d}),
                            signed(pt),
                        ));
                    }
                    Some(0x07) => {
                        self.finalize(&m.source, &mut updates);
                        self.unstake(&m.source, *amount, &mut updates);
                    }
                    Some(0x08) => self.finalize(&m.source, &mut updates),
                    _ => return Err("unsupported entrypoint".into()),
                }
            }
        }
        Ok(updates)
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
    let l = if block == "head" {
        s.level
    } else if let Ok(l) = block.parse::<i64>() {
        l
    } else {
        *s.blocks.iter().find(|(_, (h, _))| h == block)?.0
    };
    (l >= s.pruned_before.max(1) && l <= s.level).then_some(l)
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

#[derive(serde::Deserialize)]
struct Offset {
    #[serde(default)]
    offset: i64,
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
    let pred = &s.blocks[&(l - 1).max(1)].0;
    Json(
        json!({"protocol": PROTOCOL, "chain_id": s.cfg.chain_id, "hash": hash, "level": l,
        "proto": 1, "predecessor": pred, "timestamp": rfc3339(*t), "validation_pass": 4,
        "operations_hash": "LLoZS2LW3rEi7KYU4ouBQtorua37aWWCtpDmv1n2x3xoKi6sVXLWp",
        "fitness": ["02", format!("{l:08x}"), "", "ffffffff", "00000000"],
        "context": "CoVDws2fKq2LgwJn3TjtWQVaeccwZGwukptdBxfc3M9aDRggDvj1",
        "payload_hash": "vh3Mde4J3Y9uPJoAawypikziBG9cBuwxiRLgpJ31Ko4LJsAJPGV3", "payload_round": 0,
        "proof_of_work_nonce": "0dcf320900000000", "liquidity_baking_toggle_vote": "pass",
        "signature": forge::b58(prefix::EDSIG, &[0u8; 64])}),
    )
    .into_response()
}

async fn current_level(
    State(n): State<TestNode>,
    Path(block): Path<String>,
    Query(q): Query<Offset>,
) -> Response {
    let s = n.st();
    let Some(l) = level_of(&s, &block) else {
        return not_found();
    };
    Json(level_info(&s.cfg, (l + q.offset).max(1))).into_response()
}

async fn levels_in_current_cycle(
    State(n): State<TestNode>,
    Path(block): Path<String>,
    Query(q): Query<Offset>,
) -> Response {
    let s = n.st();
    let Some(l) = level_of(&s, &block) else {
        return not_found();
    };
    let c = cycle_of(&s.cfg, l) + q.offset;
    if c < 0 {
        return not_found();
    }
    let (first, last) = cycle_levels(&s.cfg, c);
    Json(json!({"first": first, "last": last})).into_response()
}

async fn constants(State(n): State<TestNode>, Path(block): Path<String>) -> Response {
    let s = n.st();
    let Some(l) = level_of(&s, &block) else {
        return not_found();
    };
    let (_, _, bpc, secs) = era_of_level(&s.cfg, l);
    // octez's own answer (protocol U025), with this chain's values.
    let Some(mut c) = octez_recorded(RECORDED_MISC, "/chains/main/blocks/head/context/constants")
    else {
        return not_found();
    };
    c["blocks_per_cycle"] = json!(bpc);
    c["minimal_block_delay"] = json!(secs.to_string());
    c["unstake_finalization_delay"] = json!(s.cfg.unstake_delay_cycles);
    c["max_operations_time_to_live"] = json!(TTL);
    Json(c).into_response()
}

fn context_at<'a>(s: &'a Node, block: &str) -> Option<&'a Context> {
    s.history.get(&level_of(s, block)?)
}

async fn contract(
    State(n): State<TestNode>,
    Path((block, pkh, field)): Path<(String, String, String)>,
) -> Response {
    let s = n.st();
    let Some(ctx) = context_at(&s, &block) else {
        return not_found();
    };
    let at = level_of(&s, &block).unwrap_or(s.level);
    let Some(a) = ctx.accounts.get(&pkh).cloned() else {
        // An unallocated implicit account: octez answers its balance and
        // counter with 0 and has no delegate.
        return match field.as_str() {
            "balance" | "counter" | "staked_balance" => Json(json!("0")).into_response(),
            "manager_key" | "unstake_requests" => Json(Value::Null).into_response(),
            _ => not_found(),
        };
    };
    let delay = s.cfg.unstake_delay_cycles;
    let cycle = cycle_of(&s.cfg, at);
    match field.as_str() {
        "balance" => Json(json!(a.balance.to_string())).into_response(),
        "counter" => Json(json!(a.counter.to_string())).into_response(),
        "staked_balance" => Json(json!(
            s.staked_of(&ctx.accounts, &ctx.bakers, &pkh).to_string()
        ))
        .into_response(),
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
                a.unstake.iter().partition(|(c, _)| c + delay < cycle);
            Json(json!({
                "finalizable": fin.iter().map(|(c, x)| json!({"delegate": d, "cycle": c, "amount": x.to_string()})).collect::<Vec<_>>(),
                "unfinalizable": {"delegate": d, "requests": unfin.iter().map(|(c, x)| json!({"cycle": c, "amount": x.to_string()})).collect::<Vec<_>>()},
            }))
            .into_response()
        }
        _ => not_found(),
    }
}

/// The full delegate object, in the fields and shapes of octez's (see
/// tests/fixtures/xtz/octez/delegates.out).
async fn delegate_info(
    State(n): State<TestNode>,
    Path((block, pkh)): Path<(String, String)>,
) -> Response {
    let s = n.st();
    let Some(ctx) = context_at(&s, &block) else {
        return not_found();
    };
    let Some(b) = ctx.bakers.get(&pkh) else {
        return not_found();
    };
    let stakers: Vec<Value> = ctx
        .accounts
        .iter()
        .filter(|(_, a)| a.delegate.as_deref() == Some(pkh.as_str()) && a.pseudotokens > 0)
        .map(|(k, a)| json!({"staker": k, "frozen_deposits": b.value_of(a.pseudotokens).to_string()}))
        .collect();
    let delegators: Vec<Value> = ctx
        .accounts
        .iter()
        .filter(|(_, a)| a.delegate.as_deref() == Some(pkh.as_str()))
        .map(|(k, _)| json!(k))
        .collect();
    // octez's own answer (protocol U025), with this baker's values.
    let Some(mut d) = octez_recorded(
        RECORDED_DELEGATES,
        "/chains/main/blocks/head/context/delegates/[PUBLIC_KEY_HASH]",
    ) else {
        return not_found();
    };
    fill(&mut d, &pkh);
    let total = b.own + b.frozen;
    d["deactivated"] = json!(false);
    d["active_staking_parameters"] = json!({
        "limit_of_staking_over_baking_millionth": if b.accepts { LIMIT_MILLIONTH } else { 0 },
        "edge_of_baking_over_staking_billionth": EDGE_BILLIONTH,
    });
    for (k, x) in [
        ("total_staked", total),
        ("own_staked", b.own),
        ("external_staked", b.frozen),
        ("staking_denominator", b.denominator),
        ("baking_power", total),
    ] {
        d[k] = json!(x.to_string());
    }
    d["stakers"] = json!(stakers);
    d["delegators"] = json!(delegators);
    Json(d).into_response()
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
        .map(|v| {
            v.iter()
                .map(|o| {
                    json!({"protocol": PROTOCOL, "chain_id": s.cfg.chain_id, "hash": o.hash,
                        "branch": s.blocks[&(l - 1).max(1)].0, "contents": o.contents,
                        "signature": forge::b58(prefix::EDSIG, &[0u8; 64])})
                })
                .collect()
        })
        .unwrap_or_default();
    Json(json!(ops)).into_response()
}

async fn metadata(State(n): State<TestNode>, Path(block): Path<String>) -> Response {
    let s = n.st();
    let Some(l) = level_of(&s, &block) else {
        return not_found();
    };
    Json(json!({
        "protocol": PROTOCOL,
        "next_protocol": PROTOCOL,
        "test_chain_status": {"status": "not_running"},
        "max_operations_ttl": TTL,
        "max_operation_data_length": 32768,
        "max_block_header_length": 289,
        "max_operation_list_length": [
            {"max_size": 4_194_304, "max_op": 2048}, {"max_size": 32768},
            {"max_size": 135_168, "max_op": 132}, {"max_size": 524_288}],
        "level_info": level_info(&s.cfg, l),
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
