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

#[derive(Debug, Default, Clone)]
struct Ledger {
    slot: u64,
    height: u64,
    utxos: BTreeMap<([u8; 32], u64), (Vec<u8>, u64)>,
    accounts: BTreeMap<[u8; 28], Account>,
    pools: BTreeSet<[u8; 28]>,
    txs: BTreeMap<String, TxRec>,
    drop_next: u32,
    /// The ledger as it was before each of the last [`KEPT_BLOCKS`]
    /// blocks, newest last: what a rollback returns to.
    past: std::collections::VecDeque<Ledger>,
}

/// How many blocks back [`TestNode::rollback`] can go.
const KEPT_BLOCKS: usize = 64;

/// What the node keeps of an applied transaction (Blockfrost's views of
/// it: `/txs/{hash}`, `/utxos`, `/withdrawals`, the address history).
#[derive(Debug, Clone, Default)]
struct TxRec {
    height: u64,
    slot: u64,
    /// Within its block.
    index: u64,
    inputs: Vec<(Vec<u8>, u64)>,
    outputs: Vec<(Vec<u8>, u64)>,
    fee: u64,
    /// Deposits locked less refunds.
    deposit: i64,
    /// (reward address bytes, lovelace).
    withdrawals: Vec<(Vec<u8>, u64)>,
    /// The signed transaction (empty for the faucet's).
    cbor: Vec<u8>,
}

impl Ledger {
    /// One slot, one block; rewards at an epoch boundary.
    fn next_block(&mut self, epoch_length: u64, bps: u64) {
        let past = std::mem::take(&mut self.past);
        let before_block = self.clone();
        self.past = past;
        self.past.push_back(before_block);
        if self.past.len() > KEPT_BLOCKS {
            self.past.pop_front();
        }
        let l = self;
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

    fn next_index(&self) -> u64 {
        self.txs
            .values()
            .filter(|t| t.height == self.height)
            .count() as u64
    }
}

/// The faucet's address (enterprise, key hash 0xfa..): where `fund` pays
/// from.
fn faucet(network_id: u8) -> Vec<u8> {
    let mut a = vec![0x60 | network_id];
    a.extend([0xfa; 28]);
    a
}

/// The node.
#[derive(Debug, Clone)]
pub struct TestNode {
    cfg: TestNodeConfig,
    ledger: Arc<Mutex<Ledger>>,
    mempool: Arc<Mutex<Mempool>>,
    journal: Arc<Mutex<Journal>>,
}

/// Everything submitted to the node, in order, so that an independent
/// ledger can replay it ([`crate::emulator`]).
#[derive(Debug, Default)]
struct Journal {
    submissions: Vec<Submission>,
    /// Why the history can no longer be replayed as it is (a rollback, a
    /// held mempool), if it cannot. A dropped submission is left out: it
    /// never reached the ledger.
    broken: Option<&'static str>,
}

/// A registered stake key ([`TestNode::stake_accounts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StakeAccount {
    /// The pool it delegates to.
    pub pool: Option<[u8; 28]>,
    /// Its vote delegation, as the adapter names it.
    pub drep: Option<String>,
    /// The deposit it locked.
    pub deposit: u64,
}

/// One entry of the node's submission journal ([`TestNode::submissions`]).
#[derive(Debug, Clone)]
pub enum Submission {
    /// An output the faucet made outside any signed transaction.
    Faucet {
        /// Its transaction id (hex); the output is at index 0.
        tx_hash: String,
        /// Address bytes.
        address: Vec<u8>,
        /// Lovelace.
        lovelace: u64,
    },
    /// A signed transaction and what the node answered.
    Tx {
        /// The tip's slot when it arrived (it lands in the next slot).
        slot: u64,
        /// The signed transaction.
        bytes: Vec<u8>,
        /// Its id, or the ledger rule it broke.
        verdict: Result<String, String>,
        /// Every registered stake key's reward balance when it arrived
        /// (reward address bytes, lovelace).
        rewards: Vec<(Vec<u8>, u64)>,
    },
}

fn err(status: StatusCode, error: &str, message: impl Into<String>) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(json!({"status_code": status.as_u16(), "error": error, "message": message.into()})),
    )
}

/// An error answer.
type Refusal = (StatusCode, Json<Value>);

type Reply = Result<Json<Value>, Refusal>;

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
            mempool: Arc::new(Mutex::new(Mempool::default())),
            journal: Arc::new(Mutex::new(Journal::default())),
        }
    }

    fn journal<R>(&self, f: impl FnOnce(&mut Journal) -> R) -> R {
        let mut j = self
            .journal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut j)
    }

    /// Every faucet output and every submitted transaction with the node's
    /// verdict, in order: what an independent ledger replays. Refused once
    /// the history is no longer a plain sequence of blocks (a rollback,
    /// held sends).
    pub fn submissions(&self) -> Result<Vec<Submission>, String> {
        self.journal(|j| match j.broken {
            Some(why) => Err(format!("the node's history cannot be replayed: {why}")),
            None => Ok(j.submissions.clone()),
        })
    }

    /// The unspent outputs: (transaction id hex, index, address bytes,
    /// lovelace), ordered.
    pub fn utxo_set(&self) -> Vec<(String, u64, Vec<u8>, u64)> {
        self.with(|l| {
            l.utxos
                .iter()
                .map(|((h, i), (a, v))| (hex::encode(h), *i, a.clone(), *v))
                .collect()
        })
    }

    /// Registered stake keys by key hash.
    pub fn stake_accounts(&self) -> BTreeMap<[u8; 28], StakeAccount> {
        self.with(|l| {
            l.accounts
                .iter()
                .filter(|(_, a)| a.registered)
                .map(|(k, a)| {
                    let s = StakeAccount {
                        pool: a.pool,
                        drep: a.drep.clone(),
                        deposit: a.deposit,
                    };
                    (*k, s)
                })
                .collect()
        })
    }

    fn with<R>(&self, f: impl FnOnce(&mut Ledger) -> R) -> R {
        let mut l = self
            .ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut l)
    }

    /// A faucet transaction paying `lovelace` to `address` (bytes), in the
    /// current block (the faucet pays its own fee); returns its hash.
    pub fn fund(&self, address: &[u8], lovelace: u64) -> String {
        let network_id = self.cfg.network_id;
        let (epoch_length, bps) = (self.cfg.epoch_length, self.cfg.reward_bps);
        let id = self.with(|l| {
            l.next_block(epoch_length, bps);
            let n = l.txs.len() as u64 + l.utxos.len() as u64;
            let h = Hasher::<256>::hash(&[address, &n.to_be_bytes()].concat());
            let mut id = [0u8; 32];
            id.copy_from_slice(h.as_ref());
            l.utxos.insert((id, 0), (address.to_vec(), lovelace));
            let rec = TxRec {
                height: l.height,
                slot: l.slot,
                index: l.next_index(),
                inputs: vec![(faucet(network_id), lovelace + 170_000)],
                outputs: vec![(address.to_vec(), lovelace)],
                fee: 170_000,
                ..TxRec::default()
            };
            l.txs.insert(hex::encode(id), rec);
            hex::encode(id)
        });
        self.journal(|j| {
            j.submissions.push(Submission::Faucet {
                tx_hash: id.clone(),
                address: address.to_vec(),
                lovelace,
            });
        });
        id
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
                l.next_block(epoch_length, bps);
            }
        });
    }

    /// A rollback: the last `n` blocks are replaced by `n` empty blocks of
    /// a fork that won (the tip's height moves on as before). Transactions
    /// in the dropped blocks are gone, as a node's mempool does not take
    /// back what a rollback removed: the wallet must submit them again,
    /// and can while their validity interval lasts. Returns how many
    /// transactions were dropped.
    pub fn rollback(&self, n: usize) -> usize {
        let (epoch_length, bps) = (self.cfg.epoch_length, self.cfg.reward_bps);
        self.journal(|j| j.broken = Some("a rollback"));
        self.with(|l| {
            assert!(
                (1..=l.past.len()).contains(&n),
                "the test node keeps {} blocks back",
                l.past.len()
            );
            let mut past = std::mem::take(&mut l.past);
            past.truncate(past.len() - n + 1);
            let Some(fork_point) = past.pop_back() else {
                unreachable!("n >= 1 blocks were kept")
            };
            let dropped = l.txs.len() - fork_point.txs.len();
            *l = fork_point;
            l.past = past;
            for _ in 0..n {
                l.next_block(epoch_length, bps);
            }
            dropped
        })
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
            .route("/txs/{hash}/utxos", get(tx_utxos))
            .route("/txs/{hash}/withdrawals", get(tx_withdrawals))
            .route("/txs/{hash}/cbor", get(tx_cbor))
            .route("/addresses/{addr}/transactions", get(address_txs))
            .route("/tx/submit", post(submit))
            .with_state(self.clone())
            .layer(axum::middleware::from_fn(|req, next| {
                blockfrost_api().conform(req, next)
            }));
        softstake_testnode::serve(app, addr).await
    }

    /// Applies a transaction under the ledger rules; returns its id.
    /// While sends are held ([`TestNode::hold_sends`]) it is checked
    /// against the ledger with the held ones applied first, as a node's
    /// mempool checks it (inputs a held transaction spends are spent), and
    /// kept in the mempool, not in a block.
    pub fn apply(&self, bytes: &[u8]) -> Result<String, String> {
        let cfg = self.cfg.clone();
        let mut pool = self
            .mempool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if pool.hold {
            let mut view = self.with(|l| {
                let past = std::mem::take(&mut l.past);
                let view = l.clone();
                l.past = past;
                view
            });
            for held in &pool.held {
                apply_on(&cfg, &mut view, held)?;
            }
            let id = apply_on(&cfg, &mut view, bytes)?;
            if !pool.held.iter().any(|h| h.as_slice() == bytes) {
                pool.held.push(bytes.to_vec());
            }
            return Ok(id);
        }
        drop(pool);
        let network_id = cfg.network_id;
        let (slot, rewards, journaled, verdict) = self.with(|l| {
            let rewards = l
                .accounts
                .iter()
                .filter(|(_, a)| a.registered)
                .map(|(k, a)| {
                    let mut addr = vec![0xe0 | network_id];
                    addr.extend(k);
                    (addr, a.rewards)
                })
                .collect();
            let slot = l.slot;
            let verdict = apply_on(&cfg, l, bytes);
            // A dropped submission never reached the ledger.
            let lost = verdict.as_ref().is_ok_and(|id| !l.txs.contains_key(id));
            (slot, rewards, (!lost).then_some(verdict.clone()), verdict)
        });
        if let Some(verdict) = journaled {
            self.journal(|j| {
                j.submissions.push(Submission::Tx {
                    slot,
                    bytes: bytes.to_vec(),
                    verdict,
                    rewards,
                });
            });
        }
        verdict
    }

    /// From now on, valid submissions wait in the mempool (answered with
    /// their id, not in any block, unknown to `/txs`) until
    /// [`TestNode::release_sends`].
    pub fn hold_sends(&self) {
        self.journal(|j| j.broken = Some("sends were held in the mempool"));
        self.mempool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .hold = true;
    }

    /// Puts every held transaction in a block of its own, in the order they
    /// arrived (one that is no longer valid is dropped), and stops holding.
    /// Returns the ids applied.
    pub fn release_sends(&self) -> Vec<String> {
        let held = {
            let mut pool = self
                .mempool
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            pool.hold = false;
            std::mem::take(&mut pool.held)
        };
        let cfg = self.cfg.clone();
        held.iter()
            .filter_map(|b| self.with(|l| apply_on(&cfg, l, b)).ok())
            .collect()
    }
}

/// The node's mempool while sends are held.
#[derive(Debug, Default)]
struct Mempool {
    hold: bool,
    /// Signed transactions, in arrival order.
    held: Vec<Vec<u8>>,
}

/// Applies `bytes` to `l` under the ledger rules (see [`TestNode::apply`]).
fn apply_on(cfg: &TestNodeConfig, l: &mut Ledger, bytes: &[u8]) -> Result<String, String> {
    let tx: Tx = minicbor::decode(bytes).map_err(|e| format!("DeserialiseFailure: {e}"))?;
    let body = &tx.transaction_body;
    let body_hash = Hasher::<256>::hash(body.raw_cbor());
    let id = hex::encode(body_hash.as_ref());
    if l.txs.contains_key(&id) {
        return Err("BadInputsUTxO (already applied)".into());
    }
    // It lands in the next block (slot + 1), which must come before the
    // TTL: the ledger's `invalidHereafter` is exclusive.
    match body.ttl {
        Some(ttl) if l.slot + 1 < ttl => {}
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
    let mut recorded_inputs = Vec::new();
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
        recorded_inputs.push((addr.clone(), *v));
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
    let mut recorded_withdrawals = Vec::new();
    for (acct, amount) in body.withdrawals.iter().flat_map(|w| w.iter()) {
        recorded_withdrawals.push((acct.to_vec(), *amount));
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
    // A block of its own, after the tip the adapter may have read.
    l.next_block(cfg.epoch_length, cfg.reward_bps);
    for k in spent {
        l.utxos.remove(&k);
    }
    let mut h = [0u8; 32];
    h.copy_from_slice(body_hash.as_ref());
    let rec = TxRec {
        height: l.height,
        slot: l.slot,
        index: l.next_index(),
        inputs: recorded_inputs,
        outputs: outs.clone(),
        fee: body.fee,
        deposit: i64::try_from(deposits).unwrap_or(i64::MAX)
            - i64::try_from(refunds).unwrap_or(i64::MAX),
        withdrawals: recorded_withdrawals,
        cbor: bytes.to_vec(),
    };
    for (i, (addr, coin)) in outs.into_iter().enumerate() {
        l.utxos.insert((h, i as u64), (addr, coin));
    }
    l.accounts = accounts;
    l.txs.insert(id.clone(), rec);
    Ok(id)
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
/// (from 1), in `order` asc (default) or desc; `from`/`to` block bounds
/// where a list takes them.
#[derive(Debug, serde::Deserialize)]
struct Paging {
    count: Option<usize>,
    page: Option<usize>,
    order: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

impl Paging {
    /// (count, page), or the 400 Blockfrost answers.
    fn window(&self) -> Result<(usize, usize), Refusal> {
        let count = self.count.unwrap_or(100);
        let page = self.page.unwrap_or(1);
        if !(1..=100).contains(&count) || page == 0 {
            return Err(err(
                StatusCode::BAD_REQUEST,
                "Bad Request",
                "count must be 1..=100 and page at least 1",
            ));
        }
        Ok((count, page))
    }
}

async fn rewards(
    State(n): State<TestNode>,
    Path(s): Path<String>,
    axum::extract::Query(q): axum::extract::Query<Paging>,
) -> Reply {
    let k = stake_key(&s)?;
    let (count, page) = q.window()?;
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

fn not_found() -> (StatusCode, Json<Value>) {
    err(
        StatusCode::NOT_FOUND,
        "Not Found",
        "The requested component has not been found.",
    )
}

fn bech(addr: &[u8]) -> String {
    crate::tx::bech32(addr)
}

impl TestNode {
    fn time_of(&self, slot: u64) -> i64 {
        self.cfg.system_start + i64::try_from(slot).unwrap_or(i64::MAX)
    }
}

async fn tx(State(n): State<TestNode>, Path(h): Path<String>) -> Reply {
    let rec = n.with(|l| l.txs.get(&h).cloned()).ok_or_else(not_found)?;
    let out: u64 = rec.outputs.iter().map(|(_, v)| v).sum();
    Ok(Json(example(
        "/txs/{hash}",
        &[
            ("hash", json!(h)),
            ("block_height", json!(rec.height)),
            ("block_time", json!(n.time_of(rec.slot))),
            ("slot", json!(rec.slot)),
            ("index", json!(rec.index)),
            (
                "output_amount",
                json!([{"unit": "lovelace", "quantity": out.to_string()}]),
            ),
            ("fees", json!(rec.fee.to_string())),
            ("deposit", json!(rec.deposit.to_string())),
            ("utxo_count", json!(rec.inputs.len() + rec.outputs.len())),
            ("withdrawal_count", json!(rec.withdrawals.len())),
            ("asset_mint_or_burn_count", json!(0)),
            ("redeemer_count", json!(0)),
            ("valid_contract", json!(true)),
        ],
    )))
}

async fn tx_utxos(State(n): State<TestNode>, Path(h): Path<String>) -> Reply {
    let rec = n.with(|l| l.txs.get(&h).cloned()).ok_or_else(not_found)?;
    let base = example("/txs/{hash}/utxos", &[]);
    let one = |which: &str, addr: &[u8], v: u64, i: usize| {
        let mut x = base[which][0].clone();
        for (k, val) in [
            ("address", json!(bech(addr))),
            (
                "amount",
                json!([{"unit": "lovelace", "quantity": v.to_string()}]),
            ),
            ("output_index", json!(i)),
            ("collateral", json!(false)),
            ("data_hash", Value::Null),
            ("inline_datum", Value::Null),
            ("reference_script_hash", Value::Null),
        ] {
            x[k] = val;
        }
        if which == "inputs" {
            x["reference"] = json!(false);
        } else {
            x["consumed_by_tx"] = Value::Null;
        }
        x
    };
    Ok(Json(json!({
        "hash": h,
        "inputs": rec.inputs.iter().enumerate().map(|(i, (a, v))| one("inputs", a, *v, i)).collect::<Vec<_>>(),
        "outputs": rec.outputs.iter().enumerate().map(|(i, (a, v))| one("outputs", a, *v, i)).collect::<Vec<_>>(),
    })))
}

async fn tx_cbor(State(n): State<TestNode>, Path(h): Path<String>) -> Reply {
    let rec = n.with(|l| l.txs.get(&h).cloned()).ok_or_else(not_found)?;
    Ok(Json(json!({"cbor": hex::encode(rec.cbor)})))
}

async fn tx_withdrawals(State(n): State<TestNode>, Path(h): Path<String>) -> Reply {
    let rec = n.with(|l| l.txs.get(&h).cloned()).ok_or_else(not_found)?;
    Ok(Json(Value::Array(
        rec.withdrawals
            .iter()
            .map(|(a, v)| json!({"address": bech(a), "amount": v.to_string()}))
            .collect(),
    )))
}

/// `from`/`to` as Blockfrost takes them: `height` or `height:index`.
fn bound(s: Option<&str>) -> Result<Option<(u64, u64)>, Refusal> {
    let Some(s) = s else { return Ok(None) };
    let bad = || {
        err(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            format!("invalid block bound {s:?}"),
        )
    };
    let (h, i) = match s.split_once(':') {
        Some((h, i)) => (h, Some(i)),
        None => (s, None),
    };
    let h = h.parse().map_err(|_| bad())?;
    let i = i.map(|i| i.parse().map_err(|_| bad())).transpose()?;
    Ok(Some((h, i.unwrap_or(0))))
}

async fn address_txs(
    State(n): State<TestNode>,
    Path(a): Path<String>,
    axum::extract::Query(q): axum::extract::Query<Paging>,
) -> Reply {
    let addr = decode_addr(&a)?;
    let (count, page) = q.window()?;
    let from = bound(q.from.as_deref())?;
    // `to` is inclusive: a height alone covers its whole block.
    let to = match q.to.as_deref() {
        Some(t) if !t.contains(':') => bound(Some(t))?.map(|(h, _)| (h, u64::MAX)),
        other => bound(other)?,
    };
    let mut list: Vec<(u64, u64, String, u64)> = n.with(|l| {
        l.txs
            .iter()
            .filter(|(_, r)| r.inputs.iter().chain(&r.outputs).any(|(x, _)| *x == addr))
            .map(|(h, r)| (r.height, r.index, h.clone(), r.slot))
            .filter(|(h, i, ..)| {
                from.is_none_or(|f| (*h, *i) >= f) && to.is_none_or(|t| (*h, *i) <= t)
            })
            .collect()
    });
    list.sort();
    if q.order.as_deref() == Some("desc") {
        list.reverse();
    }
    Ok(Json(Value::Array(
        list.into_iter()
            .skip((page - 1).saturating_mul(count))
            .take(count)
            .map(|(height, index, hash, slot)| {
                json!({"tx_hash": hash, "tx_index": index, "block_height": height, "block_time": n.time_of(slot)})
            })
            .collect(),
    )))
}

async fn submit(State(n): State<TestNode>, body: Bytes) -> Reply {
    n.apply(&body)
        .map(|id| Json(Value::String(id)))
        .map_err(|m| err(StatusCode::BAD_REQUEST, "Bad Request", m))
}
