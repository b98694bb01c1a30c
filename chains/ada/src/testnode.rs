//! A protocol-faithful Cardano test node behind the Blockfrost-shaped API
//! the adapter calls (no cardano-node installs from the registries). It
//! decodes every submitted transaction with pallas as a Conway
//! transaction and applies the ledger rules softstake's transactions meet:
//! validity interval (TTL), inputs unspent, every vkey witness valid for the
//! body hash and present for each input's payment key and for the stake
//! key of certificates and withdrawals, fee >= a x size + b, value
//! conserved (inputs + withdrawals + refunds = outputs + fee + deposits),
//! certificates (registration with the key deposit, delegation to a
//! registered pool, vote delegation, deregistration only with a zero reward
//! balance and the deposit refunded) and withdrawals (exactly the reward
//! balance, and only with a DRep delegation, as Conway requires). Epoch
//! boundaries pay each delegated stake key `stake x rate` into its reward
//! account (not the pool-performance formula) and record it in the reward
//! history with its pool.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use pallas_codec::minicbor;
use pallas_crypto::hash::Hasher;
use pallas_crypto::key::ed25519::{PublicKey, Signature};
use pallas_primitives::StakeCredential;
use pallas_primitives::conway::{Certificate, DRep, Tx};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// Test node parameters.
#[derive(Debug, Clone)]
pub struct TestNodeConfig {
    /// Fee per byte.
    pub min_fee_a: u64,
    /// Fixed fee.
    pub min_fee_b: u64,
    /// Stake key deposit.
    pub key_deposit: u64,
    /// Slots per epoch (1 s slots).
    pub epoch_length: u64,
    /// Unix time of slot 0.
    pub system_start: i64,
    /// Reward per epoch on delegated stake, basis points.
    pub reward_bps: u64,
    /// Network id of addresses (0 testnet).
    pub network_id: u8,
}

#[derive(Debug, Default, Clone)]
struct Account {
    registered: bool,
    deposit: u64,
    pool: Option<[u8; 28]>,
    drep: Option<String>,
    rewards: u64,
    rewards_sum: u64,
    withdrawals_sum: u64,
    history: Vec<(u64, u64, [u8; 28])>,
}

#[derive(Debug, Default)]
struct Ledger {
    slot: u64,
    height: u64,
    utxos: BTreeMap<([u8; 32], u64), (Vec<u8>, u64)>,
    accounts: BTreeMap<[u8; 28], Account>,
    pools: BTreeSet<[u8; 28]>,
    txs: BTreeMap<String, (u64, u64)>,
    drop_next: u32,
}

/// The node.
#[derive(Debug, Clone)]
pub struct TestNode {
    cfg: TestNodeConfig,
    ledger: Arc<Mutex<Ledger>>,
}

fn err(status: StatusCode, error: &str, message: impl Into<String>) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(json!({"status_code": status.as_u16(), "error": error, "message": message.into()})),
    )
}

type Reply = Result<Json<Value>, (StatusCode, Json<Value>)>;

/// Blockfrost's published API (npm `@blockfrost/openapi` 0.1.93,
/// tests/fixtures/ada/SOURCES.md). Every answer the test node serves is
/// checked against it; answers start from its documented examples, with
/// what the node models set.
pub fn blockfrost_api() -> softstake_testnode::openapi::Api {
    use softstake_testnode::openapi::{Api, Document};
    static API: std::sync::OnceLock<Api> = std::sync::OnceLock::new();
    Api::pinned(&API, || {
        Ok(vec![Document::from_yaml(
            "Blockfrost openapi.yaml",
            "",
            include_str!("../../../tests/fixtures/ada/blockfrost-openapi.yaml"),
        )?])
    })
}

/// Blockfrost's documented example answer to `GET path`, with `set` applied.
fn example(path: &str, set: &[(&str, Value)]) -> Value {
    let mut v = blockfrost_api().example("GET", path).unwrap_or(Value::Null);
    for (k, x) in set {
        v[*k] = x.clone();
    }
    v
}

pub use crate::tx::pool_bech32;

impl TestNode {
    /// An empty chain at slot 0.
    pub fn new(cfg: TestNodeConfig) -> Self {
        TestNode {
            cfg,
            ledger: Arc::new(Mutex::new(Ledger::default())),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Ledger) -> R) -> R {
        let mut l = self
            .ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut l)
    }

    /// Creates an output (a faucet transaction) paying `lovelace` to
    /// `address` (bytes).
    pub fn fund(&self, address: &[u8], lovelace: u64) {
        self.with(|l| {
            let n = l.utxos.len() as u64;
            let h = Hasher::<256>::hash(&[address, &n.to_be_bytes()].concat());
            let mut id = [0u8; 32];
            id.copy_from_slice(h.as_ref());
            l.utxos.insert((id, 0), (address.to_vec(), lovelace));
        });
    }

    /// Registers a stake pool.
    pub fn add_pool(&self, hash: [u8; 28]) {
        self.with(|l| {
            l.pools.insert(hash);
        });
    }

    /// The next `n` submissions are answered but lost.
    pub fn drop_submissions(&self, n: u32) {
        self.with(|l| l.drop_next = n);
    }

    /// Current slot.
    pub fn slot(&self) -> u64 {
        self.with(|l| l.slot)
    }

    /// Unix time of the current slot.
    pub fn now(&self) -> i64 {
        self.cfg.system_start + i64::try_from(self.slot()).unwrap_or(i64::MAX)
    }

    /// Lovelace at an address.
    pub fn balance(&self, address: &[u8]) -> u64 {
        self.with(|l| {
            l.utxos
                .values()
                .filter(|(a, _)| a == address)
                .map(|(_, v)| v)
                .sum()
        })
    }

    /// A stake key's reward balance.
    pub fn rewards(&self, stake: &[u8; 28]) -> u64 {
        self.with(|l| l.accounts.get(stake).map_or(0, |a| a.rewards))
    }

    /// Advances `n` slots (one block each), paying rewards at every epoch
    /// boundary crossed.
    pub fn advance_slots(&self, n: u64) {
        let (epoch_length, bps) = (self.cfg.epoch_length, self.cfg.reward_bps);
        self.with(|l| {
            for _ in 0..n {
                let before = l.slot / epoch_length;
                l.slot += 1;
                l.height += 1;
                if l.slot / epoch_length != before {
                    // Stake per key: its base addresses' outputs + rewards.
                    let mut stake: BTreeMap<[u8; 28], u64> = BTreeMap::new();
                    for (addr, v) in l.utxos.values() {
                        if addr.len() == 57 && addr[0] >> 4 == 0 {
                            let mut k = [0u8; 28];
                            k.copy_from_slice(&addr[29..57]);
                            *stake.entry(k).or_default() += v;
                        }
                    }
                    for (k, a) in l.accounts.iter_mut() {
                        let Some(pool) = a.pool.filter(|_| a.registered) else {
                            continue;
                        };
                        let s = stake.get(k).copied().unwrap_or(0) + a.rewards;
                        let r = s * bps / 10_000;
                        if r > 0 {
                            a.rewards += r;
                            a.rewards_sum += r;
                            a.history.push((before, r, pool));
                        }
                    }
                }
            }
        });
    }

    /// Serves on `addr`; returns the bound address.
    pub async fn serve(&self, addr: std::net::SocketAddr) -> std::io::Result<std::net::SocketAddr> {
        let app = Router::new()
            .route("/genesis", get(genesis))
            .route("/epochs/latest/parameters", get(parameters))
            .route("/epochs/{n}", get(epoch))
            .route("/blocks/latest", get(latest))
            .route("/addresses/{addr}/utxos", get(utxos))
            .route("/accounts/{stake}", get(account))
            .route("/accounts/{stake}/rewards", get(rewards))
            .route("/pools/{pool}", get(pool))
            .route("/txs/{hash}", get(tx))
            .route("/tx/submit", post(submit))
            .with_state(self.clone())
            .layer(axum::middleware::from_fn(|req, next| {
                blockfrost_api().conform(req, next)
            }));
        softstake_testnode::serve(app, addr).await
    }

    /// Applies a transaction under the ledger rules; returns its id.
    pub fn apply(&self, bytes: &[u8]) -> Result<String, String> {
        let tx: Tx = minicbor::decode(bytes).map_err(|e| format!("DeserialiseFailure: {e}"))?;
        let body = &tx.transaction_body;
        let body_hash = Hasher::<256>::hash(body.raw_cbor());
        let id = hex::encode(body_hash.as_ref());
        let cfg = &self.cfg;
        self.with(|l| {
            if l.txs.contains_key(&id) {
                return Err("BadInputsUTxO (already applied)".into());
            }
            match body.ttl {
                Some(ttl) if l.slot <= ttl => {}
                _ => {
                    return Err(format!(
                        "OutsideValidityIntervalUTxO: slot {} ttl {:?}",
                        l.slot, body.ttl
                    ));
                }
            }
            // Witnesses.
            let mut signed: BTreeSet<[u8; 28]> = BTreeSet::new();
            for w in tx
                .transaction_witness_set
                .vkeywitness
                .iter()
                .flat_map(|s| s.iter())
            {
                let vk: [u8; 32] = w
                    .vkey
                    .as_slice()
                    .try_into()
                    .map_err(|_| "bad vkey length")?;
                let sig: [u8; 64] = w
                    .signature
                    .as_slice()
                    .try_into()
                    .map_err(|_| "bad signature length")?;
                if !PublicKey::from(vk).verify(body_hash.as_ref(), &Signature::from(sig)) {
                    return Err("InvalidWitnessesUTXOW".into());
                }
                let mut h = [0u8; 28];
                h.copy_from_slice(Hasher::<224>::hash(&vk).as_ref());
                signed.insert(h);
            }
            let need = |h: &[u8; 28], what: &str| {
                if signed.contains(h) {
                    Ok(())
                } else {
                    Err(format!(
                        "MissingVKeyWitnessesUTXOW ({what} {})",
                        hex::encode(h)
                    ))
                }
            };
            // Inputs.
            let mut consumed = 0u64;
            let mut spent = Vec::new();
            for i in body.inputs.iter() {
                let mut h = [0u8; 32];
                h.copy_from_slice(i.transaction_id.as_ref());
                let key = (h, i.index);
                let (addr, v) = l
                    .utxos
                    .get(&key)
                    .ok_or_else(|| format!("BadInputsUTxO {}#{}", hex::encode(h), i.index))?;
                if addr.len() >= 29 && addr[0] >> 4 <= 1 {
                    let mut p = [0u8; 28];
                    p.copy_from_slice(&addr[1..29]);
                    need(&p, "payment key")?;
                }
                consumed += v;
                spent.push(key);
            }
            // Fee.
            let min = cfg.min_fee_a * bytes.len() as u64 + cfg.min_fee_b;
            if body.fee < min {
                return Err(format!("FeeTooSmallUTxO: {} < {min}", body.fee));
            }
            // Certificates and withdrawals on a copy of the accounts.
            let mut accounts = l.accounts.clone();
            let mut deposits = 0u64;
            let mut refunds = 0u64;
            let cred = |c: &StakeCredential| match c {
                StakeCredential::AddrKeyhash(h) => {
                    let mut k = [0u8; 28];
                    k.copy_from_slice(h.as_ref());
                    Ok(k)
                }
                StakeCredential::ScriptHash(_) => {
                    Err("script credentials are not supported here".to_string())
                }
            };
            let mut withdrawn: Vec<([u8; 28], u64)> = Vec::new();
            for (acct, amount) in body.withdrawals.iter().flat_map(|w| w.iter()) {
                let mut k = [0u8; 28];
                k.copy_from_slice(acct.get(1..29).ok_or("bad reward address")?);
                need(&k, "stake key")?;
                let a = accounts
                    .get(&k)
                    .filter(|a| a.registered)
                    .ok_or("WithdrawalsNotInRewardsCERTS (not registered)")?;
                if a.drep.is_none() {
                    return Err("ConwayWdrlNotDelegatedToDRep".into());
                }
                if a.rewards != *amount {
                    return Err(format!(
                        "WithdrawalsNotInRewardsCERTS: withdrawing {amount}, balance {}",
                        a.rewards
                    ));
                }
                withdrawn.push((k, *amount));
            }
            for (k, amount) in &withdrawn {
                if let Some(a) = accounts.get_mut(k) {
                    a.rewards -= amount;
                    a.withdrawals_sum += amount;
                }
            }
            for c in body.certificates.iter().flat_map(|s| s.iter()) {
                match c {
                    Certificate::StakeRegDeleg(sc, pool, coin) => {
                        let k = cred(sc)?;
                        need(&k, "stake key")?;
                        let a = accounts.entry(k).or_default();
                        if a.registered {
                            return Err("StakeKeyRegisteredDELEG".into());
                        }
                        if *coin != cfg.key_deposit {
                            return Err(format!(
                                "IncorrectDepositDELEG: {coin} != {}",
                                cfg.key_deposit
                            ));
                        }
                        let mut p = [0u8; 28];
                        p.copy_from_slice(pool.as_ref());
                        if !l.pools.contains(&p) {
                            return Err("StakePoolNotRegisteredOnKeyPOOL".into());
                        }
                        a.registered = true;
                        a.deposit = *coin;
                        a.pool = Some(p);
                        deposits += coin;
                    }
                    Certificate::StakeDelegation(sc, pool) => {
                        let k = cred(sc)?;
                        need(&k, "stake key")?;
                        let mut p = [0u8; 28];
                        p.copy_from_slice(pool.as_ref());
                        if !l.pools.contains(&p) {
                            return Err("StakePoolNotRegisteredOnKeyPOOL".into());
                        }
                        let a = accounts
                            .get_mut(&k)
                            .filter(|a| a.registered)
                            .ok_or("StakeDelegationImpossibleDELEG")?;
                        a.pool = Some(p);
                    }
                    Certificate::VoteDeleg(sc, d) => {
                        let k = cred(sc)?;
                        need(&k, "stake key")?;
                        let a = accounts
                            .get_mut(&k)
                            .filter(|a| a.registered)
                            .ok_or("StakeKeyNotRegisteredDELEG")?;
                        a.drep = Some(match d {
                            DRep::Key(h) => format!("key:{}", hex::encode(h)),
                            DRep::Script(h) => format!("script:{}", hex::encode(h)),
                            DRep::Abstain => "always_abstain".into(),
                            DRep::NoConfidence => "always_no_confidence".into(),
                        });
                    }
                    Certificate::UnReg(sc, coin) => {
                        let k = cred(sc)?;
                        need(&k, "stake key")?;
                        let a = accounts
                            .get_mut(&k)
                            .filter(|a| a.registered)
                            .ok_or("StakeKeyNotRegisteredDELEG")?;
                        if a.rewards != 0 {
                            return Err("StakeKeyNonZeroAccountBalanceDELEG".into());
                        }
                        if *coin != a.deposit {
                            return Err("RefundIncorrectDELEG".into());
                        }
                        refunds += coin;
                        a.registered = false;
                        a.pool = None;
                        a.drep = None;
                        a.deposit = 0;
                    }
                    other => {
                        return Err(format!(
                            "certificate not supported by the test node: {other:?}"
                        ));
                    }
                }
            }
            // Value conservation.
            let mut produced = 0u64;
            let mut outs = Vec::new();
            for o in &body.outputs {
                let (addr, coin) = match o {
                    pallas_primitives::babbage::GenTransactionOutput::Legacy(x) => (
                        x.address.to_vec(),
                        match &x.amount {
                            pallas_primitives::alonzo::Value::Coin(c) => *c,
                            pallas_primitives::alonzo::Value::Multiasset(c, _) => *c,
                        },
                    ),
                    pallas_primitives::babbage::GenTransactionOutput::PostAlonzo(x) => (
                        x.address.to_vec(),
                        match &x.value {
                            pallas_primitives::conway::Value::Coin(c) => *c,
                            pallas_primitives::conway::Value::Multiasset(c, _) => *c,
                        },
                    ),
                };
                produced += coin;
                outs.push((addr, coin));
            }
            let withdrawals: u64 = withdrawn.iter().map(|(_, a)| a).sum();
            let lhs = consumed + withdrawals + refunds;
            let rhs = produced + body.fee + deposits;
            if lhs != rhs {
                return Err(format!(
                    "ValueNotConservedUTxO: consumed {lhs}, produced {rhs}"
                ));
            }
            if l.drop_next > 0 {
                l.drop_next -= 1;
                return Ok(id);
            }
            for k in spent {
                l.utxos.remove(&k);
            }
            let mut h = [0u8; 32];
            h.copy_from_slice(body_hash.as_ref());
            for (i, (addr, coin)) in outs.into_iter().enumerate() {
                l.utxos.insert((h, i as u64), (addr, coin));
            }
            l.accounts = accounts;
            l.txs.insert(id.clone(), (l.height, l.slot));
            Ok(id)
        })
    }
}

fn decode_addr(s: &str) -> Result<Vec<u8>, (StatusCode, Json<Value>)> {
    pallas_addresses::Address::from_bech32(s)
        .map(|a| a.to_vec())
        .map_err(|_| {
            err(
                StatusCode::BAD_REQUEST,
                "Bad Request",
                format!("invalid address {s}"),
            )
        })
}

async fn genesis(State(n): State<TestNode>) -> Json<Value> {
    Json(example(
        "/genesis",
        &[
            ("network_magic", json!(42)),
            ("system_start", json!(n.cfg.system_start)),
            ("epoch_length", json!(n.cfg.epoch_length)),
            ("slot_length", json!(1)),
        ],
    ))
}

async fn parameters(State(n): State<TestNode>) -> Json<Value> {
    let epoch = n.slot() / n.cfg.epoch_length;
    Json(example(
        "/epochs/latest/parameters",
        &[
            ("epoch", json!(epoch)),
            ("min_fee_a", json!(n.cfg.min_fee_a)),
            ("min_fee_b", json!(n.cfg.min_fee_b)),
            ("key_deposit", json!(n.cfg.key_deposit.to_string())),
            ("max_tx_size", json!(16384)),
            ("coins_per_utxo_size", json!("4310")),
        ],
    ))
}

async fn epoch(State(n): State<TestNode>, Path(e): Path<u64>) -> Json<Value> {
    let start = n.cfg.system_start + i64::try_from(e * n.cfg.epoch_length).unwrap_or(i64::MAX);
    let end = start + i64::try_from(n.cfg.epoch_length).unwrap_or(0);
    Json(example(
        "/epochs/{number}",
        &[
            ("epoch", json!(e)),
            ("start_time", json!(start)),
            ("end_time", json!(end)),
            ("first_block_time", json!(start)),
            ("last_block_time", json!(end - 1)),
        ],
    ))
}

async fn latest(State(n): State<TestNode>) -> Json<Value> {
    let (slot, height) = n.with(|l| (l.slot, l.height));
    Json(example(
        "/blocks/latest",
        &[
            ("slot", json!(slot)),
            ("height", json!(height)),
            ("epoch", json!(slot / n.cfg.epoch_length)),
            ("epoch_slot", json!(slot % n.cfg.epoch_length)),
            (
                "time",
                json!(n.cfg.system_start + i64::try_from(slot).unwrap_or(0)),
            ),
            ("next_block", Value::Null),
            ("confirmations", json!(0)),
        ],
    ))
}

async fn utxos(State(n): State<TestNode>, Path(a): Path<String>) -> Reply {
    let addr = decode_addr(&a)?;
    let list: Vec<Value> = n.with(|l| {
        l.utxos
            .iter()
            .filter(|(_, (x, _))| *x == addr)
            .map(|((h, i), (_, v))| {
                let mut u = example("/addresses/{address}/utxos", &[])[0].clone();
                for (k, x) in [
                    ("address", json!(a)),
                    ("tx_hash", json!(hex::encode(h))),
                    ("output_index", json!(i)),
                    (
                        "amount",
                        json!([{"unit": "lovelace", "quantity": v.to_string()}]),
                    ),
                    ("data_hash", Value::Null),
                    ("inline_datum", Value::Null),
                    ("reference_script_hash", Value::Null),
                ] {
                    u[k] = x;
                }
                u
            })
            .collect()
    });
    if list.is_empty() {
        return Err(err(
            StatusCode::NOT_FOUND,
            "Not Found",
            "The requested component has not been found.",
        ));
    }
    Ok(Json(Value::Array(list)))
}

fn stake_key(s: &str) -> Result<[u8; 28], (StatusCode, Json<Value>)> {
    let b = decode_addr(s)?;
    b.get(1..29).and_then(|x| x.try_into().ok()).ok_or_else(|| {
        err(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "not a stake address",
        )
    })
}

async fn account(State(n): State<TestNode>, Path(s): Path<String>) -> Reply {
    let k = stake_key(&s)?;
    let a = n.with(|l| l.accounts.get(&k).cloned());
    let Some(a) = a else {
        return Err(err(
            StatusCode::NOT_FOUND,
            "Not Found",
            "The requested component has not been found.",
        ));
    };
    Ok(Json(example(
        "/accounts/{stake_address}",
        &[
            ("stake_address", json!(s)),
            ("active", json!(a.registered)),
            ("rewards_sum", json!(a.rewards_sum.to_string())),
            ("withdrawals_sum", json!(a.withdrawals_sum.to_string())),
            ("withdrawable_amount", json!(a.rewards.to_string())),
            ("pool_id", json!(a.pool.map(|p| pool_bech32(&p)))),
            ("drep_id", json!(a.drep)),
        ],
    )))
}

/// Blockfrost's paging: `count` rows (1..=100, default 100) of page `page`
/// (from 1), in `order` asc (default) or desc.
#[derive(Debug, serde::Deserialize)]
struct Paging {
    count: Option<usize>,
    page: Option<usize>,
    order: Option<String>,
}

async fn rewards(
    State(n): State<TestNode>,
    Path(s): Path<String>,
    axum::extract::Query(q): axum::extract::Query<Paging>,
) -> Reply {
    let k = stake_key(&s)?;
    let count = q.count.unwrap_or(100);
    let page = q.page.unwrap_or(1);
    if !(1..=100).contains(&count) || page == 0 {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "count must be 1..=100 and page at least 1",
        ));
    }
    let mut h = n.with(|l| {
        l.accounts
            .get(&k)
            .map(|a| a.history.clone())
            .unwrap_or_default()
    });
    if q.order.as_deref() == Some("desc") {
        h.reverse();
    }
    Ok(Json(Value::Array(
        h.into_iter()
            .skip((page - 1).saturating_mul(count))
            .take(count)
            .map(|(e, amount, pool)| json!({"epoch": e, "amount": amount.to_string(), "pool_id": pool_bech32(&pool), "type": "member"}))
            .collect(),
    )))
}

async fn pool(State(n): State<TestNode>, Path(p): Path<String>) -> Reply {
    let (_, data) = bech32::decode(&p)
        .map_err(|_| err(StatusCode::BAD_REQUEST, "Bad Request", "invalid pool id"))?;
    let known = data.len() == 28 && n.with(|l| l.pools.iter().any(|x| x[..] == data[..]));
    if known {
        Ok(Json(example(
            "/pools/{pool_id}",
            &[
                ("pool_id", json!(p)),
                ("hex", json!(hex::encode(&data))),
                ("retirement", json!([])),
            ],
        )))
    } else {
        Err(err(
            StatusCode::NOT_FOUND,
            "Not Found",
            "The requested component has not been found.",
        ))
    }
}

async fn tx(State(n): State<TestNode>, Path(h): Path<String>) -> Reply {
    match n.with(|l| l.txs.get(&h).copied()) {
        Some((height, slot)) => Ok(Json(example(
            "/txs/{hash}",
            &[
                ("hash", json!(h)),
                ("block_height", json!(height)),
                ("slot", json!(slot)),
                ("valid_contract", json!(true)),
            ],
        ))),
        None => Err(err(
            StatusCode::NOT_FOUND,
            "Not Found",
            "The requested component has not been found.",
        )),
    }
}

async fn submit(State(n): State<TestNode>, body: Bytes) -> Reply {
    n.apply(&body)
        .map(|id| Json(Value::String(id)))
        .map_err(|m| err(StatusCode::BAD_REQUEST, "Bad Request", m))
}
