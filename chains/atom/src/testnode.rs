//! A protocol-faithful Cosmos Hub test node (no gaiad installs here).
//!
//! It serves the CometBFT JSON-RPC methods the adapter calls (`status`,
//! `abci_query`, `broadcast_tx_sync`, `tx`, `tx_search`, `block`) with the
//! same shapes as a real node, answers ABCI queries with the SDK's protobuf
//! types, and processes transactions the way the SDK's ante handler and
//! staking/distribution modules do, decoding them independently of how the
//! adapter built them:
//! - CheckTx: decodes the `TxRaw`, verifies the secp256k1 signature over the
//!   SIGN_MODE_DIRECT sign doc with **its own** chain id and the account's
//!   number (so a wrong chain id or account number fails verification),
//!   requires the sequence to equal the account's next one (mempool
//!   included; code 32 otherwise), the fee to cover gas x min gas price,
//!   and the timeout height not to have passed;
//! - DeliverTx at the next block: gas (60k + 25k per message) against the
//!   limit, fee and sequence consumed even when a message fails, messages
//!   applied atomically: delegate (validator must exist), undelegate (at
//!   most `max_entries` entries per pair, `unbonding_time`), redelegate (no
//!   transitive redelegation, entry limit), withdraw rewards, set withdraw
//!   address; rewards outstanding are withdrawn automatically when a
//!   delegation changes, as in the SDK; events as the SDK emits them;
//! - blocks only when told ([`TestNode::advance`]): rewards accrue per
//!   second on bonded stake, matured unbonding returns to the balance;
//!   [`TestNode::slash`] and [`TestNode::jail`] act on demand.

use crate::proto::{self as p, DEC_SCALE};
use axum::Json;
use axum::extract::State;
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use cosmrs::proto::cosmos::{auth, bank, base, distribution, staking, tx};
use cosmrs::proto::prost::Message;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// How the node starts.
#[derive(Debug, Clone)]
pub struct TestNodeConfig {
    /// Chain id.
    pub chain_id: String,
    /// Unix time of genesis.
    pub genesis_time: i64,
    /// Seconds per block.
    pub block_secs: i64,
    /// Staking `unbonding_time`, seconds.
    pub unbonding_secs: i64,
    /// Staking `max_entries`.
    pub max_entries: u32,
    /// Reward per bonded uatom per second, x 10^18.
    pub reward_per_token_per_sec: u128,
    /// Minimum gas price, uatom per gas x 10^18.
    pub min_gas_price: u128,
    /// Validator operator addresses.
    pub validators: Vec<String>,
    /// Funded accounts (address, uatom).
    pub accounts: Vec<(String, u128)>,
}

#[derive(Debug, Clone, Default)]
struct Account {
    number: u64,
    sequence: u64,
    balance: u128,
}

#[derive(Debug, Clone)]
struct Validator {
    tokens: u128,
    shares: u128,
    jailed: bool,
    /// Commission rate x 10^18 (5% at genesis).
    commission: u128,
}

#[derive(Debug, Clone)]
struct Entry {
    creation_height: i64,
    completion: i64,
    initial: u128,
    balance: u128,
}

#[derive(Debug, Clone)]
struct TxRecord {
    height: i64,
    index: u32,
    code: u32,
    log: String,
    gas_wanted: u64,
    gas_used: u64,
    events: Vec<(String, Vec<(String, String)>)>,
    bytes: Vec<u8>,
}

#[derive(Debug)]
struct Node {
    cfg: TestNodeConfig,
    height: i64,
    time: i64,
    /// Time of each block, by height - 1 (8 bytes a block: a map cost
    /// about 25 times that, and the devnet makes 3,600 blocks a step).
    block_times: Vec<i64>,
    accounts: BTreeMap<String, Account>,
    validators: BTreeMap<String, Validator>,
    /// (delegator, validator) -> shares.
    delegations: BTreeMap<(String, String), u128>,
    /// (delegator, validator) -> reward x 10^18.
    rewards: BTreeMap<(String, String), u128>,
    unbonding: BTreeMap<(String, String), Vec<Entry>>,
    /// (delegator, src, dst) -> completion times.
    redelegations: BTreeMap<(String, String, String), Vec<i64>>,
    withdraw_addr: BTreeMap<String, String>,
    mempool: Vec<(String, Vec<u8>)>,
    /// Bank sends signed elsewhere (`TestNode::bank_send`), included with
    /// the next block: (hash, from, to, amount, fee, bytes).
    sends: Vec<(String, String, String, u128, u128, Vec<u8>)>,
    txs: BTreeMap<String, TxRecord>,
    next_account_number: u64,
    /// `[tx_index] indexer = "null"`: `status` says `tx_index: off`.
    tx_index_off: bool,
    /// The fee market's price (x/feemarket), uatom per gas x 10^18: what
    /// CheckTx requires (`ceil(price x gas limit)`, as the module's ante
    /// handler does) and what its GasPrice query answers.
    gas_price: u128,
    /// Rewards outstanding in other denominations (the Hub pays IBC
    /// denominations too): (delegator, validator) -> denom -> amount.
    foreign_rewards: BTreeMap<(String, String), BTreeMap<String, u128>>,
    /// Balances in other denominations: (address, denom) -> amount.
    foreign_balances: BTreeMap<(String, String), u128>,
}

/// The node. Clones share state.
#[derive(Debug, Clone)]
pub struct TestNode {
    inner: Arc<Mutex<Node>>,
}

type Events = Vec<(String, Vec<(String, String)>)>;

/// What the bank module emits for a send: `coin_spent`, `coin_received`,
/// `transfer`.
fn transfer_event(to: &str, from: &str, amount: u128) -> (String, Vec<(String, String)>) {
    ev(
        "transfer",
        &[
            ("recipient", to.to_owned()),
            ("sender", from.to_owned()),
            ("amount", format!("{amount}uatom")),
        ],
    )
}

fn send_events(to: &str, from: &str, amount: u128) -> Events {
    vec![
        ev(
            "coin_spent",
            &[
                ("spender", from.to_owned()),
                ("amount", format!("{amount}uatom")),
            ],
        ),
        ev(
            "coin_received",
            &[
                ("receiver", to.to_owned()),
                ("amount", format!("{amount}uatom")),
            ],
        ),
        transfer_event(to, from, amount),
    ]
}

/// The ante handler's fee deduction: a send to the fee collector and
/// `tx {fee, fee_payer}` (cosmos-sdk x/auth/ante/fee.go).
fn fee_events(payer: &str, fee: u128) -> Events {
    let mut e = send_events(
        &crate::flows::module_address("fee_collector", crate::ACCOUNT_PREFIX),
        payer,
        fee,
    );
    e.push(ev(
        "tx",
        &[
            ("fee", format!("{fee}uatom")),
            ("fee_payer", payer.to_owned()),
        ],
    ));
    e
}

fn ev(kind: &str, attrs: &[(&str, String)]) -> (String, Vec<(String, String)>) {
    (
        kind.to_owned(),
        attrs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    )
}

const GAS_BASE: u64 = 60_000;
const GAS_PER_MSG: u64 = 25_000;

impl TestNode {
    /// A node at genesis (height 1).
    pub fn new(cfg: TestNodeConfig) -> TestNode {
        let mut accounts = BTreeMap::new();
        let mut n = 0;
        for (a, b) in &cfg.accounts {
            accounts.insert(
                a.clone(),
                Account {
                    number: n,
                    sequence: 0,
                    balance: *b,
                },
            );
            n += 1;
        }
        let validators = cfg
            .validators
            .iter()
            .map(|v| {
                (
                    v.clone(),
                    Validator {
                        tokens: 1_000_000_000_000,
                        shares: 1_000_000_000_000,
                        jailed: false,
                        commission: DEC_SCALE / 20,
                    },
                )
            })
            .collect();
        let block_times = vec![cfg.genesis_time];
        TestNode {
            inner: Arc::new(Mutex::new(Node {
                height: 1,
                time: cfg.genesis_time,
                block_times,
                accounts,
                validators,
                delegations: BTreeMap::new(),
                rewards: BTreeMap::new(),
                unbonding: BTreeMap::new(),
                redelegations: BTreeMap::new(),
                withdraw_addr: BTreeMap::new(),
                mempool: Vec::new(),
                sends: Vec::new(),
                txs: BTreeMap::new(),
                next_account_number: n,
                tx_index_off: false,
                gas_price: cfg.min_gas_price,
                foreign_rewards: BTreeMap::new(),
                foreign_balances: BTreeMap::new(),
                cfg,
            })),
        }
    }

    fn st(&self) -> MutexGuard<'_, Node> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves JSON-RPC on `addr` (port 0 picks one); returns the bound address.
    pub async fn serve(&self, addr: std::net::SocketAddr) -> std::io::Result<std::net::SocketAddr> {
        let app = axum::Router::new()
            .route("/", post(rpc))
            .layer(axum::middleware::from_fn(|req, next| {
                cometbft_api().conform(req, next)
            }))
            .route("/admin/advance", post(admin_advance))
            .with_state(self.clone());
        softstake_testnode::serve(app, addr).await
    }

    /// Produces blocks for `secs` seconds (one per `block_secs`).
    pub fn advance(&self, secs: i64) {
        let mut n = self.st();
        let target = n.time + secs;
        while n.time + n.cfg.block_secs <= target {
            let t = n.time + n.cfg.block_secs;
            n.block(t);
        }
    }

    /// Slashes a validator's tokens by `ppm` parts per million.
    pub fn slash(&self, validator: &str, ppm: u32) {
        let mut n = self.st();
        if let Some(v) = n.validators.get_mut(validator) {
            v.tokens -= v.tokens / 1_000_000 * u128::from(ppm);
        }
    }

    /// A bank send signed elsewhere (an exchange wallet topping the pool
    /// up, a payout or a theft with the custody key), included with the
    /// next block with the SDK's events; `from` pays `fee`. An account the
    /// node does not know starts with `amount + fee` (an outside wallet).
    /// Returns the transaction hash.
    pub fn bank_send(&self, from: &str, to: &str, amount: u128, fee: u128) -> String {
        use cosmrs::proto::cosmos::{
            bank::v1beta1::MsgSend, base::v1beta1::Coin, tx::v1beta1 as t,
        };
        let mut n = self.st();
        if !n.accounts.contains_key(from) {
            let number = n.next_account_number;
            n.next_account_number += 1;
            n.accounts.insert(
                from.to_owned(),
                Account {
                    number,
                    sequence: 0,
                    balance: amount + fee,
                },
            );
        }
        let seq = n.accounts.get(from).map_or(0, |a| a.sequence) + n.sends.len() as u64;
        let msg = MsgSend {
            from_address: from.to_owned(),
            to_address: to.to_owned(),
            amount: vec![Coin {
                denom: crate::DENOM.into(),
                amount: amount.to_string(),
            }],
        };
        let body = t::TxBody {
            messages: vec![cosmrs::Any {
                type_url: "/cosmos.bank.v1beta1.MsgSend".into(),
                value: p::encode(&msg),
            }],
            memo: format!("send {seq}"),
            ..Default::default()
        };
        let bytes = p::encode(&t::TxRaw {
            body_bytes: p::encode(&body),
            auth_info_bytes: Vec::new(),
            signatures: vec![seq.to_be_bytes().to_vec()],
        });
        let hash = crate::tx::tx_hash(&bytes);
        n.sends.push((
            hash.clone(),
            from.to_owned(),
            to.to_owned(),
            amount,
            fee,
            bytes,
        ));
        hash
    }

    /// Turns the transaction indexer off (as `indexer = "null"` does).
    pub fn disable_tx_index(&self) {
        self.st().tx_index_off = true;
    }

    /// Moves the fee market's price (uatom per gas x 10^18; never below
    /// the configured minimum, as the module's `MinBaseGasPrice`).
    pub fn set_gas_price(&self, scaled: u128) {
        let mut n = self.st();
        n.gas_price = scaled.max(n.cfg.min_gas_price);
    }

    /// Adds `amount` of `denom` to what `delegator` has outstanding with
    /// `validator`, paid with the next withdrawal of that delegation (as
    /// the Hub's distribution module pays its fee pool's and consumer
    /// chains' denominations).
    pub fn pay_foreign(&self, delegator: &str, validator: &str, denom: &str, amount: u128) {
        *self
            .st()
            .foreign_rewards
            .entry((delegator.to_owned(), validator.to_owned()))
            .or_default()
            .entry(denom.to_owned())
            .or_default() += amount;
    }

    /// `addr`'s balance of a denomination other than uatom.
    pub fn foreign_balance(&self, addr: &str, denom: &str) -> u128 {
        self.st()
            .foreign_balances
            .get(&(addr.to_owned(), denom.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Sets a validator's commission rate (x 10^18), as its operator's
    /// `MsgEditValidator` would (the node does not hold it to the SDK's
    /// daily `max_change_rate`).
    pub fn set_commission(&self, validator: &str, scaled: u128) {
        if let Some(v) = self.st().validators.get_mut(validator) {
            v.commission = scaled;
        }
    }

    /// Jails a validator.
    pub fn jail(&self, validator: &str) {
        if let Some(v) = self.st().validators.get_mut(validator) {
            v.jailed = true;
        }
    }

    /// An account's spendable uatom.
    pub fn balance(&self, addr: &str) -> u128 {
        self.st().accounts.get(addr).map_or(0, |a| a.balance)
    }

    /// Current height and time.
    pub fn head(&self) -> (i64, i64) {
        let n = self.st();
        (n.height, n.time)
    }

    /// How many transactions were delivered with code 0.
    pub fn successful_txs(&self) -> usize {
        self.st().txs.values().filter(|t| t.code == 0).count()
    }

    /// Transactions waiting for the next block.
    pub fn mempool_len(&self) -> usize {
        self.st().mempool.len()
    }

    /// Sums every uatom the node holds for `addr`: balance, delegations,
    /// unbonding (not rewards).
    pub fn holdings(&self, addr: &str) -> u128 {
        let n = self.st();
        let mut t = n.accounts.get(addr).map_or(0, |a| a.balance);
        for ((d, v), s) in &n.delegations {
            if d == addr {
                t += n.tokens_of(v, *s);
            }
        }
        for ((d, _), es) in &n.unbonding {
            if d == addr {
                t += es.iter().map(|e| e.balance).sum::<u128>();
            }
        }
        t
    }
}

impl Node {
    fn tokens_of(&self, validator: &str, shares: u128) -> u128 {
        self.validators.get(validator).map_or(0, |v| {
            shares
                .saturating_mul(v.tokens)
                .checked_div(v.shares)
                .unwrap_or(0)
        })
    }

    fn block(&mut self, t: i64) {
        let dt = u128::try_from(t - self.time).unwrap_or(0);
        // Rewards accrue on bonded (non-jailed) stake over the block.
        let keys: Vec<(String, String)> = self.delegations.keys().cloned().collect();
        for k in keys {
            let shares = self.delegations[&k];
            if self.validators.get(&k.1).is_some_and(|v| !v.jailed) {
                let tokens = self.tokens_of(&k.1, shares);
                let r = tokens * self.cfg.reward_per_token_per_sec * dt;
                *self.rewards.entry(k).or_default() += r;
            }
        }
        self.height += 1;
        self.time = t;
        self.block_times.push(t);
        // Matured unbonding returns to the balance.
        let mut back: Vec<(String, u128)> = Vec::new();
        for ((d, _), es) in self.unbonding.iter_mut() {
            es.retain(|e| {
                if e.completion <= t {
                    back.push((d.clone(), e.balance));
                    false
                } else {
                    true
                }
            });
        }
        self.unbonding.retain(|_, es| !es.is_empty());
        for (d, a) in back {
            self.accounts.entry(d).or_default().balance += a;
        }
        for es in self.redelegations.values_mut() {
            es.retain(|c| *c > t);
        }
        self.redelegations.retain(|_, es| !es.is_empty());
        // Deliver the mempool.
        let pool = std::mem::take(&mut self.mempool);
        let n = pool.len();
        for (i, (hash, bytes)) in pool.into_iter().enumerate() {
            let rec = self.deliver(&bytes, u32::try_from(i).unwrap_or(0));
            self.txs.insert(hash, rec);
        }
        for (i, (hash, from, to, amount, fee, bytes)) in
            std::mem::take(&mut self.sends).into_iter().enumerate()
        {
            let mut events = fee_events(&from, fee);
            let have = self.accounts.get(&from).map_or(0, |a| a.balance);
            let code = if have < amount + fee { 5 } else { 0 };
            if code == 0 {
                events.push(ev(
                    "message",
                    &[
                        ("action", "/cosmos.bank.v1beta1.MsgSend".to_owned()),
                        ("sender", from.clone()),
                        ("module", "bank".to_owned()),
                    ],
                ));
                events.extend(send_events(&to, &from, amount));
            }
            let spent = if code == 0 {
                amount + fee
            } else {
                fee.min(have)
            };
            if let Some(a) = self.accounts.get_mut(&from) {
                a.balance -= spent;
                a.sequence += 1;
            }
            if code == 0 {
                self.accounts.entry(to).or_default().balance += amount;
            }
            self.txs.insert(
                hash,
                TxRecord {
                    height: self.height,
                    index: u32::try_from(n + i).unwrap_or(0),
                    code,
                    log: if code == 0 {
                        String::new()
                    } else {
                        "insufficient funds".into()
                    },
                    gas_wanted: GAS_BASE,
                    gas_used: GAS_BASE,
                    events,
                    bytes,
                },
            );
        }
    }

    /// Checks a transaction as CheckTx does; returns the signer address.
    fn check(
        &self,
        bytes: &[u8],
        pending_for: &dyn Fn(&str) -> u64,
    ) -> Result<Decoded, (u32, String)> {
        let d = decode_tx(bytes).map_err(|e| (2, e))?;
        let acct = self
            .accounts
            .get(&d.signer)
            .ok_or_else(|| (9, format!("account {} not found", d.signer)))?;
        // The sign doc as this node sees it: its chain id, the account number.
        let doc = tx::v1beta1::SignDoc {
            body_bytes: d.raw.body_bytes.clone(),
            auth_info_bytes: d.raw.auth_info_bytes.clone(),
            chain_id: self.cfg.chain_id.clone(),
            account_number: acct.number,
        };
        verify(&d.pubkey, &doc.encode_to_vec(), &d.signature).map_err(|_| {
            (
                4,
                "signature verification failed; please verify account number and chain-id"
                    .to_owned(),
            )
        })?;
        let expected = acct.sequence + pending_for(&d.signer);
        if d.sequence != expected {
            return Err((
                p::CODE_WRONG_SEQUENCE,
                format!(
                    "account sequence mismatch, expected {expected}, got {}: incorrect account sequence",
                    d.sequence
                ),
            ));
        }
        if d.timeout_height != 0
            && i64::try_from(d.timeout_height).unwrap_or(i64::MAX) <= self.height
        {
            return Err((
                p::CODE_TX_TIMEOUT_HEIGHT,
                format!("tx timeout height {} reached", d.timeout_height),
            ));
        }
        let min_fee = (u128::from(d.gas_limit) * self.gas_price).div_ceil(DEC_SCALE);
        if d.fee < min_fee {
            return Err((
                p::CODE_INSUFFICIENT_FEE,
                format!(
                    "got: {}uatom required: {min_fee}uatom, minGasPrice: {}uatom, gas: {}: insufficient fee",
                    d.fee,
                    crate::proto::dec_exact(&self.gas_price.to_string()).unwrap_or_default(),
                    d.gas_limit
                ),
            ));
        }
        if acct.balance < d.fee {
            return Err((
                5,
                format!(
                    "{}uatom is smaller than {}uatom: insufficient funds",
                    acct.balance, d.fee
                ),
            ));
        }
        Ok(d)
    }

    fn deliver(&mut self, bytes: &[u8], index: u32) -> TxRecord {
        let mut rec = TxRecord {
            height: self.height,
            index,
            code: 0,
            log: String::new(),
            gas_wanted: 0,
            gas_used: 0,
            events: Vec::new(),
            bytes: bytes.to_vec(),
        };
        let d = match self.check(bytes, &|_| 0) {
            Ok(d) => d,
            Err((code, log)) => {
                rec.code = code;
                rec.log = log;
                return rec;
            }
        };
        rec.gas_wanted = d.gas_limit;
        rec.gas_used = GAS_BASE + GAS_PER_MSG * d.msgs.len() as u64;
        // Fee and sequence are consumed whatever the messages do.
        if let Some(a) = self.accounts.get_mut(&d.signer) {
            a.balance -= d.fee;
            a.sequence += 1;
        }
        // The ante handler's events, kept even when the messages fail:
        // the fee sent to the fee collector, then `tx {fee, fee_payer}`.
        rec.events.extend(fee_events(&d.signer, d.fee));
        rec.events.push(ev(
            "tx",
            &[("acc_seq", format!("{}/{}", d.signer, d.sequence))],
        ));
        if rec.gas_used > d.gas_limit {
            rec.code = 11;
            rec.log = format!(
                "out of gas: gasWanted: {}, gasUsed: {}",
                d.gas_limit, rec.gas_used
            );
            return rec;
        }
        // Messages are atomic: apply to a copy, keep it only if all succeed.
        let snapshot = self.snapshot();
        let mut events = Vec::new();
        for m in &d.msgs {
            if let Err(e) = self.apply(&d.signer, m, &mut events) {
                self.restore(snapshot);
                rec.code = e.0;
                rec.log = e.1;
                return rec;
            }
        }
        rec.events.extend(events);
        rec
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            accounts: self.accounts.clone(),
            validators: self.validators.clone(),
            delegations: self.delegations.clone(),
            rewards: self.rewards.clone(),
            unbonding: self.unbonding.clone(),
            redelegations: self.redelegations.clone(),
            withdraw_addr: self.withdraw_addr.clone(),
            foreign_rewards: self.foreign_rewards.clone(),
            foreign_balances: self.foreign_balances.clone(),
        }
    }

    fn restore(&mut self, s: Snapshot) {
        self.accounts = s.accounts;
        self.validators = s.validators;
        self.delegations = s.delegations;
        self.rewards = s.rewards;
        self.unbonding = s.unbonding;
        self.redelegations = s.redelegations;
        self.withdraw_addr = s.withdraw_addr;
        self.foreign_rewards = s.foreign_rewards;
        self.foreign_balances = s.foreign_balances;
    }

    fn withdraw(&mut self, del: &str, val: &str, events: &mut Events) {
        let key = (del.to_owned(), val.to_owned());
        let r = self.rewards.get(&key).copied().unwrap_or(0);
        let whole = r / DEC_SCALE;
        self.rewards.insert(key.clone(), r - whole * DEC_SCALE);
        // sdk.Coins: sorted by denomination, zero amounts left out.
        let mut paid: BTreeMap<String, u128> =
            self.foreign_rewards.remove(&key).unwrap_or_default();
        if whole > 0 {
            paid.insert(crate::DENOM.to_owned(), whole);
        }
        let coins = paid
            .iter()
            .map(|(d, n)| format!("{n}{d}"))
            .collect::<Vec<_>>()
            .join(",");
        let to = self
            .withdraw_addr
            .get(del)
            .cloned()
            .unwrap_or_else(|| del.to_owned());
        if !self.accounts.contains_key(&to) {
            let number = self.next_account_number;
            self.next_account_number += 1;
            self.accounts.insert(
                to.clone(),
                Account {
                    number,
                    ..Account::default()
                },
            );
        }
        if let Some(a) = self.accounts.get_mut(&to) {
            a.balance += whole;
        }
        for (d, n) in &paid {
            if d != crate::DENOM {
                *self
                    .foreign_balances
                    .entry((to.clone(), d.clone()))
                    .or_default() += n;
            }
        }
        if !paid.is_empty() {
            let from = crate::flows::module_address("distribution", crate::ACCOUNT_PREFIX);
            let (t, mut attrs) = transfer_event(&to, &from, whole);
            if let Some(a) = attrs.iter_mut().find(|(k, _)| k == "amount") {
                a.1 = coins.clone();
            }
            events.push((t, attrs));
        }
        events.push(ev(
            "withdraw_rewards",
            &[
                (
                    "amount",
                    // A zero reward is written as a zero coin of the bond
                    // denomination, not left empty.
                    if paid.is_empty() {
                        format!("0{}", crate::DENOM)
                    } else {
                        coins
                    },
                ),
                ("validator", val.to_owned()),
                ("delegator", del.to_owned()),
            ],
        ));
    }

    fn apply(&mut self, signer: &str, m: &Msg, events: &mut Events) -> Result<(), (u32, String)> {
        let max = self.cfg.max_entries as usize;
        let msg_ev = |action: &str| {
            ev(
                "message",
                &[("action", action.to_owned()), ("sender", signer.to_owned())],
            )
        };
        match m {
            Msg::Delegate { del, val, amount } => {
                if del != signer {
                    return Err((4, "delegator is not the signer".into()));
                }
                if !self.validators.contains_key(val) {
                    return Err((3, format!("validator {val} does not exist")));
                }
                if *amount == 0 {
                    return Err((10, "invalid delegation amount".into()));
                }
                let bal = self.accounts.get(del).map_or(0, |a| a.balance);
                if bal < *amount {
                    return Err((
                        5,
                        format!("{bal}uatom is smaller than {amount}uatom: insufficient funds"),
                    ));
                }
                let key = (del.clone(), val.clone());
                if self.delegations.contains_key(&key) {
                    self.withdraw(del, val, events);
                }
                let v = self
                    .validators
                    .get_mut(val)
                    .ok_or((3, "no validator".to_owned()))?;
                let shares = (amount * v.shares).checked_div(v.tokens).unwrap_or(*amount);
                v.tokens += amount;
                v.shares += shares;
                *self.delegations.entry(key).or_default() += shares;
                if let Some(a) = self.accounts.get_mut(del) {
                    a.balance -= amount;
                }
                events.push(msg_ev("/cosmos.staking.v1beta1.MsgDelegate"));
                events.push(ev(
                    "delegate",
                    &[
                        ("validator", val.clone()),
                        ("amount", format!("{amount}uatom")),
                    ],
                ));
            }
            Msg::Undelegate { del, val, amount } => {
                if del != signer {
                    return Err((4, "delegator is not the signer".into()));
                }
                let key = (del.clone(), val.clone());
                let shares = *self.delegations.get(&key).ok_or((
                    41,
                    "no delegation for (address, validator) tuple".to_owned(),
                ))?;
                if self.unbonding.get(&key).map_or(0, Vec::len) >= max {
                    return Err((
                        26,
                        "too many unbonding delegation entries for (delegator, validator) tuple"
                            .into(),
                    ));
                }
                let have = self.tokens_of(val, shares);
                if *amount == 0 || *amount > have {
                    return Err((10, format!("invalid shares amount: {amount} > {have}")));
                }
                self.withdraw(del, val, events);
                let v = self
                    .validators
                    .get_mut(val)
                    .ok_or((3, "no validator".to_owned()))?;
                let remove = (amount * v.shares).div_ceil(v.tokens).min(shares);
                v.tokens -= amount;
                v.shares -= remove;
                if shares == remove {
                    self.delegations.remove(&key);
                } else {
                    self.delegations.insert(key.clone(), shares - remove);
                }
                let completion = self.time + self.cfg.unbonding_secs;
                self.unbonding.entry(key).or_default().push(Entry {
                    creation_height: self.height,
                    completion,
                    initial: *amount,
                    balance: *amount,
                });
                events.push(msg_ev("/cosmos.staking.v1beta1.MsgUndelegate"));
            }
            Msg::Redelegate {
                del,
                src,
                dst,
                amount,
            } => {
                if del != signer {
                    return Err((4, "delegator is not the signer".into()));
                }
                if src == dst {
                    return Err((28, "cannot redelegate to the same validator".into()));
                }
                if !self.validators.contains_key(dst) {
                    return Err((3, format!("validator {dst} does not exist")));
                }
                if self
                    .redelegations
                    .keys()
                    .any(|(d, _, to)| d == del && to == src)
                {
                    return Err((31, "redelegation to this validator already in progress; first redelegation to this validator must complete before next redelegation".into()));
                }
                let rkey = (del.clone(), src.clone(), dst.clone());
                if self.redelegations.get(&rkey).map_or(0, Vec::len) >= max {
                    return Err((32, "too many redelegation entries for (delegator, src-validator, dst-validator) tuple".into()));
                }
                let key = (del.clone(), src.clone());
                let shares = *self
                    .delegations
                    .get(&key)
                    .ok_or((41, "no delegation".to_owned()))?;
                let have = self.tokens_of(src, shares);
                if *amount == 0 || *amount > have {
                    return Err((10, format!("invalid shares amount: {amount} > {have}")));
                }
                self.withdraw(del, src, events);
                let dkey = (del.clone(), dst.clone());
                if self.delegations.contains_key(&dkey) {
                    self.withdraw(del, dst, events);
                }
                let v = self
                    .validators
                    .get_mut(src)
                    .ok_or((3, "no validator".to_owned()))?;
                let remove = (amount * v.shares).div_ceil(v.tokens).min(shares);
                v.tokens -= amount;
                v.shares -= remove;
                if shares == remove {
                    self.delegations.remove(&key);
                } else {
                    self.delegations.insert(key, shares - remove);
                }
                let w = self
                    .validators
                    .get_mut(dst)
                    .ok_or((3, "no validator".to_owned()))?;
                let add = (amount * w.shares).checked_div(w.tokens).unwrap_or(*amount);
                w.tokens += amount;
                w.shares += add;
                *self.delegations.entry(dkey).or_default() += add;
                let completion = self.time + self.cfg.unbonding_secs;
                self.redelegations.entry(rkey).or_default().push(completion);
                events.push(msg_ev("/cosmos.staking.v1beta1.MsgBeginRedelegate"));
            }
            Msg::Withdraw { del, val } => {
                if del != signer {
                    return Err((4, "delegator is not the signer".into()));
                }
                if !self.delegations.contains_key(&(del.clone(), val.clone())) {
                    return Err((41, "no delegation for (address, validator) tuple".into()));
                }
                self.withdraw(del, val, events);
                events.push(msg_ev(
                    "/cosmos.distribution.v1beta1.MsgWithdrawDelegatorReward",
                ));
            }
            Msg::SetWithdraw { del, to } => {
                if del != signer {
                    return Err((4, "delegator is not the signer".into()));
                }
                self.withdraw_addr.insert(del.clone(), to.clone());
                events.push(msg_ev("/cosmos.distribution.v1beta1.MsgSetWithdrawAddress"));
            }
        }
        Ok(())
    }
}

struct Snapshot {
    accounts: BTreeMap<String, Account>,
    validators: BTreeMap<String, Validator>,
    delegations: BTreeMap<(String, String), u128>,
    rewards: BTreeMap<(String, String), u128>,
    unbonding: BTreeMap<(String, String), Vec<Entry>>,
    redelegations: BTreeMap<(String, String, String), Vec<i64>>,
    withdraw_addr: BTreeMap<String, String>,
    foreign_rewards: BTreeMap<(String, String), BTreeMap<String, u128>>,
    foreign_balances: BTreeMap<(String, String), u128>,
}

#[derive(Debug)]
enum Msg {
    Delegate {
        del: String,
        val: String,
        amount: u128,
    },
    Undelegate {
        del: String,
        val: String,
        amount: u128,
    },
    Redelegate {
        del: String,
        src: String,
        dst: String,
        amount: u128,
    },
    Withdraw {
        del: String,
        val: String,
    },
    SetWithdraw {
        del: String,
        to: String,
    },
}

#[derive(Debug)]
struct Decoded {
    raw: tx::v1beta1::TxRaw,
    signer: String,
    pubkey: Vec<u8>,
    signature: Vec<u8>,
    sequence: u64,
    gas_limit: u64,
    fee: u128,
    timeout_height: u64,
    msgs: Vec<Msg>,
}

fn uatom(coins: &[base::v1beta1::Coin]) -> Result<u128, String> {
    let mut t = 0u128;
    for c in coins {
        if c.denom != crate::DENOM {
            return Err(format!("unexpected denom {}", c.denom));
        }
        t += c
            .amount
            .parse::<u128>()
            .map_err(|e| format!("coin amount: {e}"))?;
    }
    Ok(t)
}

/// Decodes a `TxRaw` with the SDK's protobuf types (independently of how
/// the adapter built it).
fn decode_tx(bytes: &[u8]) -> Result<Decoded, String> {
    let raw: tx::v1beta1::TxRaw = p::decode(bytes)?;
    let body: tx::v1beta1::TxBody = p::decode(&raw.body_bytes)?;
    let auth: tx::v1beta1::AuthInfo = p::decode(&raw.auth_info_bytes)?;
    let [si] = auth.signer_infos.as_slice() else {
        return Err("exactly one signer expected".into());
    };
    let pk_any = si.public_key.as_ref().ok_or("signer has no public key")?;
    if pk_any.type_url != "/cosmos.crypto.secp256k1.PubKey" {
        return Err(format!("unsupported key type {}", pk_any.type_url));
    }
    let pk: cosmrs::proto::cosmos::crypto::secp256k1::PubKey = p::decode(&pk_any.value)?;
    let direct = si
        .mode_info
        .as_ref()
        .and_then(|m| m.sum.as_ref())
        .is_some_and(|s| matches!(s, tx::v1beta1::mode_info::Sum::Single(x) if x.mode == 1));
    if !direct {
        return Err("only SIGN_MODE_DIRECT is accepted".into());
    }
    let [signature] = raw.signatures.as_slice() else {
        return Err("exactly one signature expected".into());
    };
    let signer = cosmrs::tendermint::PublicKey::from_raw_secp256k1(&pk.key)
        .map(cosmrs::crypto::PublicKey::from)
        .ok_or("bad secp256k1 public key")?
        .account_id(crate::ACCOUNT_PREFIX)
        .map_err(|e| e.to_string())?
        .to_string();
    let fee = auth.fee.as_ref().ok_or("no fee")?;
    let mut msgs = Vec::new();
    for any in &body.messages {
        let coin = |c: Option<base::v1beta1::Coin>| -> Result<u128, String> {
            uatom(&[c.ok_or("no amount")?])
        };
        msgs.push(match any.type_url.as_str() {
            "/cosmos.staking.v1beta1.MsgDelegate" => {
                let m: staking::v1beta1::MsgDelegate = p::decode(&any.value)?;
                Msg::Delegate {
                    del: m.delegator_address,
                    val: m.validator_address,
                    amount: coin(m.amount)?,
                }
            }
            "/cosmos.staking.v1beta1.MsgUndelegate" => {
                let m: staking::v1beta1::MsgUndelegate = p::decode(&any.value)?;
                Msg::Undelegate {
                    del: m.delegator_address,
                    val: m.validator_address,
                    amount: coin(m.amount)?,
                }
            }
            "/cosmos.staking.v1beta1.MsgBeginRedelegate" => {
                let m: staking::v1beta1::MsgBeginRedelegate = p::decode(&any.value)?;
                Msg::Redelegate {
                    del: m.delegator_address,
                    src: m.validator_src_address,
                    dst: m.validator_dst_address,
                    amount: coin(m.amount)?,
                }
            }
            "/cosmos.distribution.v1beta1.MsgWithdrawDelegatorReward" => {
                let m: distribution::v1beta1::MsgWithdrawDelegatorReward = p::decode(&any.value)?;
                Msg::Withdraw {
                    del: m.delegator_address,
                    val: m.validator_address,
                }
            }
            "/cosmos.distribution.v1beta1.MsgSetWithdrawAddress" => {
                let m: distribution::v1beta1::MsgSetWithdrawAddress = p::decode(&any.value)?;
                Msg::SetWithdraw {
                    del: m.delegator_address,
                    to: m.withdraw_address,
                }
            }
            other => return Err(format!("unknown message {other}")),
        });
    }
    if msgs.is_empty() {
        return Err("no messages".into());
    }
    Ok(Decoded {
        signer,
        pubkey: pk.key,
        signature: signature.clone(),
        sequence: si.sequence,
        gas_limit: fee.gas_limit,
        fee: uatom(&fee.amount)?,
        timeout_height: body.timeout_height,
        msgs,
        raw,
    })
}

fn verify(pubkey: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), ()> {
    use k256::ecdsa::signature::Verifier;
    let vk = k256::ecdsa::VerifyingKey::from_sec1_bytes(pubkey).map_err(|_| ())?;
    let sig = k256::ecdsa::Signature::from_slice(sig).map_err(|_| ())?;
    // The SDK accepts low-s signatures only.
    if sig.normalize_s().is_some() {
        return Err(());
    }
    vk.verify(msg, &sig).map_err(|_| ())
}

fn rfc3339(t: i64) -> String {
    softstake_core::Timestamp::from_unix(t).to_string()
}

fn ts(t: i64) -> cosmrs::proto::Timestamp {
    cosmrs::proto::Timestamp {
        seconds: t,
        nanos: 0,
    }
}

/// The CometBFT v0.38 RPC as cometbft/cometbft publishes it
/// (`rpc/openapi/openapi.yaml`, tests/fixtures/atom/SOURCES.md). Every
/// answer the test node serves is checked against it. Where the published
/// schemas do not describe what CometBFT sends, the answer is checked
/// against a schema built from the document's own components and the
/// types CometBFT encodes (`rpc/core/types/responses.go`, the ABCI types'
/// jsonpb encoding with EmitDefaults, `types/block.go`); each such
/// correction is named with its reason, and checked against recorded
/// answers of real nodes in `tests/fixtures.rs`.
pub fn cometbft_api() -> softstake_testnode::openapi::JsonRpcApi {
    use softstake_testnode::openapi::{Api, Document, JsonRpcApi};
    static API: std::sync::OnceLock<Api> = std::sync::OnceLock::new();
    let api = Api::pinned(&API, || {
        Ok(vec![cometbft_corrected(Document::from_yaml(
            "CometBFT v0.38.25 RPC",
            "",
            include_str!("../../../tests/fixtures/atom/cometbft-rpc-openapi.yaml"),
        )?)])
    });
    // rpc/jsonrpc/types/types.go: RPCError{code int, message, data omitempty}.
    JsonRpcApi::new(
        api,
        json!({"type": "object", "required": ["jsonrpc", "id", "error"],
            "properties": {"jsonrpc": {"type": "string", "enum": ["2.0"]}, "id": {"type": "integer"},
                "error": {"type": "object", "required": ["code", "message"], "additionalProperties": false,
                    "properties": {"code": {"type": "integer"}, "message": {"type": "string"}, "data": {"type": "string"}}}}}),
    )
}

/// The corrections to the published CometBFT document (see
/// [`cometbft_api`]), one per method whose published answer schema is
/// not what the node sends.
pub fn cometbft_corrected(
    d: softstake_testnode::openapi::Document,
) -> softstake_testnode::openapi::Document {
    fn envelope(result: Value) -> Value {
        json!({"allOf": [{"$ref": "#/components/schemas/JSONRPC"},
            {"type": "object", "required": ["jsonrpc", "id", "result"], "properties": {"result": result}}]})
    }
    let int64 = json!({"type": "string", "pattern": "^-?[0-9]+$"});
    let hash = json!({"type": "string", "pattern": "^[0-9A-F]{64}$"});
    let exec_tx_result = json!({"type": "object",
        "required": ["code", "data", "log", "info", "gas_wanted", "gas_used", "events", "codespace"],
        "properties": {"code": {"type": "integer", "minimum": 0}, "data": {"type": "string", "nullable": true},
            "log": {"type": "string"}, "info": {"type": "string"}, "gas_wanted": int64, "gas_used": int64,
            "events": {"type": "array", "items": {"type": "object", "required": ["type", "attributes"],
                "properties": {"type": {"type": "string"},
                    "attributes": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}}}},
            "codespace": {"type": "string"}}});
    let result_tx = json!({"type": "object", "required": ["hash", "height", "index", "tx_result", "tx"],
        "properties": {"hash": hash, "height": int64, "index": {"type": "integer", "minimum": 0},
            "tx_result": exec_tx_result, "tx": {"type": "string"}}});
    let tx_search = envelope(json!({"type": "object", "required": ["txs", "total_count"],
        "properties": {"txs": {"type": "array", "items": result_tx}, "total_count": int64}}));
    let tx = envelope(result_tx.clone());
    d.retarget(
        "/tx",
        "tx_result is abci.ExecTxResult (events, not the `tags` of Tendermint 0.33; code a number; every field written by jsonpb with EmitDefaults)",
        |_| tx,
    )
    .retarget(
        "/tx_search",
        "its txs are ResultTx, whose tx_result is abci.ExecTxResult (as /tx)",
        |_| tx_search,
    )
    .retarget(
        "/abci_query",
        "no `error` beside a result (JSON-RPC 2.0); the response is abci.ResponseQuery written by jsonpb with EmitDefaults: code a number, `proofOps`, `info`, `codespace`",
        |_| {
            envelope(json!({"type": "object", "required": ["response"], "properties": {"response": {
                "type": "object",
                "required": ["code", "log", "info", "index", "key", "value", "proofOps", "height", "codespace"],
                "properties": {"code": {"type": "integer", "minimum": 0}, "log": {"type": "string"},
                    "info": {"type": "string"}, "index": {"type": "string", "pattern": "^-?[0-9]+$"},
                    "key": {"type": "string", "nullable": true}, "value": {"type": "string", "nullable": true},
                    "proofOps": {"type": "object", "nullable": true},
                    "height": {"type": "string", "pattern": "^[0-9]+$"}, "codespace": {"type": "string"}}}}}))
        },
    )
    .retarget(
        "/broadcast_tx_sync",
        "no `error` beside a result (JSON-RPC 2.0); ResultBroadcastTx's code is a uint32, a number",
        |_| {
            envelope(json!({"type": "object", "required": ["code", "data", "log", "codespace", "hash"],
                "properties": {"code": {"type": "integer", "minimum": 0}, "data": {"type": "string"},
                    "log": {"type": "string"}, "codespace": {"type": "string"},
                    "hash": {"type": "string", "pattern": "^[0-9A-F]{64}$"}}}))
        },
    )
    .retarget(
        "/block",
        "types.Block's data is {txs}, its evidence {evidence} of registered-type objects ({type, value}, e.g. tendermint/DuplicateVoteEvidence), its last_commit a Commit of CommitSigs (block_id_flag, validator_address, timestamp, signature) with a string height; the header's version.app is left out when 0 (omitempty)",
        |doc| {
            let mut header = doc["components"]["schemas"]["BlockHeader"].clone();
            header["properties"]["version"]["required"] = json!(["block"]);
            let block_id = json!({"$ref": "#/components/schemas/BlockID"});
            envelope(json!({"type": "object", "required": ["block_id", "block"], "properties": {
                "block_id": block_id,
                "block": {"type": "object", "required": ["header", "data", "evidence", "last_commit"], "properties": {
                    "header": header,
                    "data": {"type": "object", "required": ["txs"], "properties": {
                        "txs": {"type": "array", "nullable": true, "items": {"type": "string"}}}},
                    "evidence": {"type": "object", "required": ["evidence"], "properties": {
                        "evidence": {"type": "array", "items": {"type": "object", "required": ["type", "value"],
                            "properties": {"type": {"type": "string"}, "value": {"type": "object"}}}}}},
                    "last_commit": {"type": "object", "required": ["height", "round", "block_id", "signatures"], "properties": {
                        "height": {"type": "string", "pattern": "^[0-9]+$"}, "round": {"type": "integer"},
                        "block_id": block_id,
                        "signatures": {"type": "array", "items": {"type": "object",
                            "required": ["block_id_flag", "validator_address", "timestamp", "signature"],
                            "properties": {"block_id_flag": {"type": "integer", "minimum": 1, "maximum": 3, "example": 2},
                                "validator_address": {"type": "string"}, "timestamp": {"type": "string"},
                                "signature": {"type": "string", "nullable": true}}}}}}}}}}))
        },
    )
}

/// The result the CometBFT document shows for `method` (the result of its
/// envelope): the node sets what it models; the rest stays as documented.
fn documented(method: &str) -> Value {
    cometbft_api()
        .api()
        .example("GET", &format!("/{method}"))
        .map_or(Value::Null, |v| v["result"].clone())
}

fn rpc_err(id: &Value, code: i64, data: String) -> Json<Value> {
    Json(
        json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": "Internal error", "data": data}}),
    )
}

fn ok(id: &Value, result: Value) -> Json<Value> {
    Json(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

fn tx_json(hash: &str, r: &TxRecord) -> Value {
    json!({
        "hash": hash,
        "height": r.height.to_string(),
        "index": r.index,
        // abci.ExecTxResult, written by jsonpb with EmitDefaults: every
        // field present, int64 as strings.
        "tx_result": {
            "code": r.code,
            "data": if r.code == 0 { Value::from("") } else { Value::Null },
            "log": r.log,
            "info": "",
            "gas_wanted": r.gas_wanted.to_string(),
            "gas_used": r.gas_used.to_string(),
            "codespace": if r.code == 0 { "" } else { "sdk" },
            "events": r.events.iter().map(|(t, a)| json!({
                "type": t,
                "attributes": a.iter().map(|(k, v)| json!({"key": k, "value": v, "index": true})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        },
        "tx": B64.encode(&r.bytes),
    })
}

/// `key='value'` and `tx.height>N` conditions joined by AND.
fn matches(q: &str, hash_rec: &TxRecord) -> bool {
    q.split(" AND ").all(|cond| {
        let cond = cond.trim();
        if let Some(n) = cond.strip_prefix("tx.height<=") {
            return n.trim().parse::<i64>().is_ok_and(|n| hash_rec.height <= n);
        }
        if let Some(n) = cond.strip_prefix("tx.height>=") {
            return n.trim().parse::<i64>().is_ok_and(|n| hash_rec.height >= n);
        }
        if let Some(n) = cond.strip_prefix("tx.height>") {
            return n.trim().parse::<i64>().is_ok_and(|n| hash_rec.height > n);
        }
        let Some((k, v)) = cond.split_once('=') else {
            return false;
        };
        let v = v.trim().trim_matches('\'');
        let Some((t, attr)) = k.trim().split_once('.') else {
            return false;
        };
        hash_rec
            .events
            .iter()
            .any(|(et, attrs)| et == t && attrs.iter().any(|(ak, av)| ak == attr && av == v))
    })
}

async fn admin_advance(State(node): State<TestNode>, Json(v): Json<Value>) -> Json<Value> {
    node.advance(v["secs"].as_i64().unwrap_or(0));
    let (h, t) = node.head();
    Json(json!({"height": h, "time": rfc3339(t)}))
}

async fn rpc(State(node): State<TestNode>, Json(req): Json<Value>) -> Json<Value> {
    let id = req["id"].clone();
    let params = &req["params"];
    let mut n = node.st();
    match req["method"].as_str().unwrap_or("") {
        "status" => {
            let mut r = documented("status");
            r["node_info"]["network"] = json!(n.cfg.chain_id);
            r["node_info"]["version"] = json!("0.38.25");
            r["node_info"]["other"] = json!({"tx_index": if n.tx_index_off { "off" } else { "on" }, "rpc_address": "tcp://0.0.0.0:26657"});
            r["sync_info"]["latest_block_height"] = json!(n.height.to_string());
            r["sync_info"]["latest_block_time"] = json!(rfc3339(n.time));
            r["sync_info"]["earliest_block_height"] = json!("1");
            r["sync_info"]["earliest_block_time"] =
                json!(rfc3339(n.block_times.first().copied().unwrap_or(n.time)));
            r["sync_info"]["catching_up"] = json!(false);
            ok(&id, r)
        }
        "block" => {
            let h = params["height"]
                .as_str()
                .and_then(|s| s.parse::<i64>().ok())
                .unwrap_or(n.height);
            match usize::try_from(h - 1)
                .ok()
                .and_then(|i| n.block_times.get(i))
            {
                Some(t) => {
                    let mut r = documented("block");
                    let b = &mut r["block"];
                    b["header"]["chain_id"] = json!(n.cfg.chain_id);
                    b["header"]["height"] = json!(h.to_string());
                    b["header"]["time"] = json!(rfc3339(*t));
                    let mut txs: Vec<(u32, String)> = n
                        .txs
                        .values()
                        .filter(|r| r.height == h)
                        .map(|r| (r.index, B64.encode(&r.bytes)))
                        .collect();
                    txs.sort();
                    b["data"] = json!({"txs": txs.into_iter().map(|t| t.1).collect::<Vec<_>>()});
                    b["evidence"] = json!({"evidence": []});
                    b["last_commit"]["height"] = json!((h - 1).to_string());
                    ok(&id, r)
                }
                None => rpc_err(
                    &id,
                    -32603,
                    format!(
                        "height {h} must be less than or equal to the current blockchain height {}",
                        n.height
                    ),
                ),
            }
        }
        "broadcast_tx_sync" => {
            let Some(bytes) = params["tx"].as_str().and_then(|s| B64.decode(s).ok()) else {
                return rpc_err(&id, -32602, "tx must be base64".into());
            };
            let hash = crate::tx::tx_hash(&bytes);
            // CometBFT's mempool cache refuses bytes it has seen before
            // the application checks them: a JSON-RPC error
            // (`mempool.ErrTxInCache`), not a CheckTx code.
            if n.txs.contains_key(&hash) || n.mempool.iter().any(|(h, _)| *h == hash) {
                return rpc_err(&id, -32603, crate::adapter::TX_IN_CACHE.into());
            }
            let pending: Vec<String> = n
                .mempool
                .iter()
                .filter_map(|(_, b)| decode_tx(b).ok().map(|d| d.signer))
                .collect();
            let count = |s: &str| pending.iter().filter(|x| *x == s).count() as u64;
            match n.check(&bytes, &count) {
                Ok(_) => {
                    n.mempool.push((hash.clone(), bytes));
                    ok(
                        &id,
                        json!({"code": 0, "log": "", "hash": hash, "codespace": "", "data": ""}),
                    )
                }
                Err((code, log)) => ok(
                    &id,
                    json!({"code": code, "log": log, "hash": hash, "codespace": "sdk", "data": ""}),
                ),
            }
        }
        "tx" => {
            let hash = params["hash"]
                .as_str()
                .and_then(|s| B64.decode(s).ok())
                .map(hex::encode_upper)
                .unwrap_or_default();
            match n.txs.get(&hash) {
                Some(r) => ok(&id, tx_json(&hash, r)),
                None => rpc_err(&id, -32603, format!("tx ({hash}) not found")),
            }
        }
        "tx_search" => {
            let q = params["query"].as_str().unwrap_or("");
            let per_page: usize = params["per_page"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(30)
                .clamp(1, 100);
            let page: usize = params["page"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(1)
                .max(1);
            let mut found: Vec<(&String, &TxRecord)> =
                n.txs.iter().filter(|(_, r)| matches(q, r)).collect();
            found.sort_by_key(|(_, r)| (r.height, r.index));
            if params["order_by"].as_str() == Some("desc") {
                found.reverse();
            }
            let total = found.len();
            let txs: Vec<Value> = found
                .into_iter()
                .skip((page - 1) * per_page)
                .take(per_page)
                .map(|(h, r)| tx_json(h, r))
                .collect();
            ok(&id, json!({"txs": txs, "total_count": total.to_string()}))
        }
        "abci_query" => {
            let path = params["path"].as_str().unwrap_or("").to_owned();
            let data = params["data"]
                .as_str()
                .and_then(|s| hex::decode(s).ok())
                .unwrap_or_default();
            // abci.ResponseQuery, written by jsonpb with EmitDefaults.
            let (code, log, value, codespace) = match query(&mut n, &path, &data) {
                Ok(v) if v.is_empty() => (0, String::new(), Value::Null, ""),
                Ok(v) => (0, String::new(), json!(B64.encode(v)), ""),
                Err((code, log)) => (code, log, Value::Null, "sdk"),
            };
            ok(
                &id,
                json!({"response": {"code": code, "log": log, "info": "", "index": "0", "key": null,
                    "value": value, "proofOps": null, "height": n.height.to_string(), "codespace": codespace}}),
            )
        }
        other => rpc_err(&id, -32601, format!("method {other:?} not found")),
    }
}

fn query(n: &mut Node, path: &str, data: &[u8]) -> Result<Vec<u8>, (u32, String)> {
    let bad = |e: String| (2u32, e);
    Ok(match path {
        p::ACCOUNT => {
            let r: auth::v1beta1::QueryAccountRequest = p::decode(data).map_err(bad)?;
            let a = n
                .accounts
                .get(&r.address)
                .ok_or((22, format!("account {} not found", r.address)))?;
            let base = auth::v1beta1::BaseAccount {
                address: r.address.clone(),
                pub_key: None,
                account_number: a.number,
                sequence: a.sequence,
            };
            p::encode(&auth::v1beta1::QueryAccountResponse {
                account: Some(cosmrs::Any {
                    type_url: "/cosmos.auth.v1beta1.BaseAccount".into(),
                    value: p::encode(&base),
                }),
            })
        }
        p::BALANCE => {
            let r: bank::v1beta1::QueryBalanceRequest = p::decode(data).map_err(bad)?;
            let b = n.accounts.get(&r.address).map_or(0, |a| a.balance);
            p::encode(&bank::v1beta1::QueryBalanceResponse {
                balance: Some(base::v1beta1::Coin {
                    denom: r.denom,
                    amount: b.to_string(),
                }),
            })
        }
        p::DELEGATIONS => {
            let r: staking::v1beta1::QueryDelegatorDelegationsRequest =
                p::decode(data).map_err(bad)?;
            let resps = n
                .delegations
                .iter()
                .filter(|((d, _), _)| *d == r.delegator_addr)
                .map(|((d, v), s)| staking::v1beta1::DelegationResponse {
                    delegation: Some(staking::v1beta1::Delegation {
                        delegator_address: d.clone(),
                        validator_address: v.clone(),
                        shares: (s * DEC_SCALE).to_string(),
                    }),
                    balance: Some(base::v1beta1::Coin {
                        denom: crate::DENOM.into(),
                        amount: n.tokens_of(v, *s).to_string(),
                    }),
                })
                .collect();
            p::encode(&staking::v1beta1::QueryDelegatorDelegationsResponse {
                delegation_responses: resps,
                pagination: None,
            })
        }
        p::UNBONDING => {
            let r: staking::v1beta1::QueryDelegatorUnbondingDelegationsRequest =
                p::decode(data).map_err(bad)?;
            let ubds = n
                .unbonding
                .iter()
                .filter(|((d, _), _)| *d == r.delegator_addr)
                .map(|((d, v), es)| staking::v1beta1::UnbondingDelegation {
                    delegator_address: d.clone(),
                    validator_address: v.clone(),
                    entries: es
                        .iter()
                        .map(|e| staking::v1beta1::UnbondingDelegationEntry {
                            creation_height: e.creation_height,
                            completion_time: Some(ts(e.completion)),
                            initial_balance: e.initial.to_string(),
                            balance: e.balance.to_string(),
                            unbonding_id: 0,
                            unbonding_on_hold_ref_count: 0,
                        })
                        .collect(),
                })
                .collect();
            p::encode(
                &staking::v1beta1::QueryDelegatorUnbondingDelegationsResponse {
                    unbonding_responses: ubds,
                    pagination: None,
                },
            )
        }
        p::REDELEGATIONS => {
            let r: staking::v1beta1::QueryRedelegationsRequest = p::decode(data).map_err(bad)?;
            let resps = n
                .redelegations
                .iter()
                .filter(|((d, _, _), _)| *d == r.delegator_addr)
                .map(|((d, src, dst), es)| {
                    let entries: Vec<staking::v1beta1::RedelegationEntry> = es
                        .iter()
                        .map(|c| staking::v1beta1::RedelegationEntry {
                            completion_time: Some(ts(*c)),
                            ..Default::default()
                        })
                        .collect();
                    staking::v1beta1::RedelegationResponse {
                        redelegation: Some(staking::v1beta1::Redelegation {
                            delegator_address: d.clone(),
                            validator_src_address: src.clone(),
                            validator_dst_address: dst.clone(),
                            entries: entries.clone(),
                        }),
                        entries: entries
                            .into_iter()
                            .map(|e| staking::v1beta1::RedelegationEntryResponse {
                                redelegation_entry: Some(e),
                                balance: String::new(),
                            })
                            .collect(),
                    }
                })
                .collect();
            p::encode(&staking::v1beta1::QueryRedelegationsResponse {
                redelegation_responses: resps,
                pagination: None,
            })
        }
        p::FEEMARKET_GAS_PRICE => {
            let r: p::GasPriceRequest = p::decode(data).map_err(bad)?;
            if r.denom != crate::DENOM {
                return Err((2, format!("unable to get gas price for denom {}", r.denom)));
            }
            p::encode(&p::GasPriceResponse {
                price: Some(base::v1beta1::DecCoin {
                    denom: crate::DENOM.into(),
                    amount: n.gas_price.to_string(),
                }),
            })
        }
        p::STAKING_PARAMS => p::encode(&staking::v1beta1::QueryParamsResponse {
            params: Some(staking::v1beta1::Params {
                unbonding_time: Some(cosmrs::proto::tendermint::google::protobuf::Duration {
                    seconds: n.cfg.unbonding_secs,
                    nanos: 0,
                }),
                max_validators: 180,
                max_entries: n.cfg.max_entries,
                historical_entries: 10_000,
                bond_denom: crate::DENOM.into(),
                min_commission_rate: "0".into(),
            }),
        }),
        p::VALIDATOR => {
            let r: staking::v1beta1::QueryValidatorRequest = p::decode(data).map_err(bad)?;
            let v = n
                .validators
                .get(&r.validator_addr)
                .ok_or((5, format!("validator {} not found", r.validator_addr)))?;
            p::encode(&staking::v1beta1::QueryValidatorResponse {
                validator: Some(staking::v1beta1::Validator {
                    operator_address: r.validator_addr.clone(),
                    jailed: v.jailed,
                    status: if v.jailed { 2 } else { 3 },
                    tokens: v.tokens.to_string(),
                    delegator_shares: (v.shares * DEC_SCALE).to_string(),
                    commission: Some(staking::v1beta1::Commission {
                        commission_rates: Some(staking::v1beta1::CommissionRates {
                            rate: v.commission.to_string(),
                            max_rate: (DEC_SCALE / 5).to_string(),
                            max_change_rate: (DEC_SCALE / 100).to_string(),
                        }),
                        update_time: Some(ts(n.cfg.genesis_time)),
                    }),
                    ..Default::default()
                }),
            })
        }
        p::TOTAL_REWARDS => {
            let r: distribution::v1beta1::QueryDelegationTotalRewardsRequest =
                p::decode(data).map_err(bad)?;
            let mut total = 0u128;
            let rewards = n
                .delegations
                .keys()
                .filter(|(d, _)| *d == r.delegator_address)
                .map(|k| {
                    let amt = n.rewards.get(k).copied().unwrap_or(0);
                    total += amt;
                    distribution::v1beta1::DelegationDelegatorReward {
                        validator_address: k.1.clone(),
                        reward: vec![base::v1beta1::DecCoin {
                            denom: crate::DENOM.into(),
                            amount: amt.to_string(),
                        }],
                    }
                })
                .collect();
            p::encode(
                &distribution::v1beta1::QueryDelegationTotalRewardsResponse {
                    rewards,
                    total: vec![base::v1beta1::DecCoin {
                        denom: crate::DENOM.into(),
                        amount: total.to_string(),
                    }],
                },
            )
        }
        p::SIMULATE => {
            let r: tx::v1beta1::SimulateRequest = p::decode(data).map_err(bad)?;
            let d = decode_tx(&r.tx_bytes).map_err(|e| (2, e))?;
            // Simulation skips signature checks but runs the messages.
            let snapshot = n.snapshot();
            let mut events = Vec::new();
            let mut res = Ok(());
            for m in &d.msgs {
                res = n.apply(&d.signer, m, &mut events);
                if res.is_err() {
                    break;
                }
            }
            n.restore(snapshot);
            res?;
            p::encode(&tx::v1beta1::SimulateResponse {
                gas_info: Some(cosmrs::proto::cosmos::base::abci::v1beta1::GasInfo {
                    gas_wanted: d.gas_limit,
                    gas_used: GAS_BASE + GAS_PER_MSG * d.msgs.len() as u64,
                }),
                result: None,
            })
        }
        other => return Err((6, format!("unknown query path {other}"))),
    })
}

/// The `sha256` of bytes, as CometBFT's `tx` method wants the hash (base64).
pub fn hash_param(tx_hash_hex: &str) -> Option<String> {
    hex::decode(tx_hash_hex).ok().map(|b| B64.encode(b))
}

/// Test helper: SHA-256 of bytes (upper hex).
pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode_upper(Sha256::digest(b))
}
