//! Conway-era transactions for every staking operation, built as CBOR and
//! signed here; bodies and signed bytes equal to
//! cardano-serialization-lib's (tests/vectors/ada).
//!
//! Shape: `[body, {0: set of [vkey, sig]}, true, null]`; the body is the
//! map {0: set of inputs, 1: [change output], 2: fee, 3: ttl, 4: set of
//! certificates, 5: withdrawals}. The fee is `a x size + b` of the signed
//! transaction, raised until it covers its own size. Witnesses: the payment
//! key (inputs) and, for certificates and withdrawals, the stake key.

use crate::cbor::Writer;
use crate::keys::LocalKey;
use pallas_crypto::hash::Hasher;
use serde::{Deserialize, Serialize};

/// An unspent output of the custody address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Utxo {
    /// Transaction hash, hex.
    pub tx_hash: String,
    /// Output index.
    pub output_index: u64,
    /// Lovelace (only ada-only outputs are spent).
    pub lovelace: u64,
}

/// A DRep choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DRep {
    /// Abstain from every vote (keeps rewards withdrawable).
    AlwaysAbstain,
    /// No confidence in every vote.
    AlwaysNoConfidence,
    /// A key-based DRep (28-byte key hash, hex).
    Key(String),
    /// A script-based DRep (28-byte script hash, hex).
    Script(String),
}

impl DRep {
    /// Parses `always_abstain`, `always_no_confidence`, `key:<hex>` or
    /// `script:<hex>`.
    pub fn parse(s: &str) -> Result<Self, TxError> {
        match s {
            "always_abstain" => Ok(DRep::AlwaysAbstain),
            "always_no_confidence" => Ok(DRep::AlwaysNoConfidence),
            _ => match s.split_once(':') {
                Some(("key", h)) => Ok(DRep::Key(h.into())),
                Some(("script", h)) => Ok(DRep::Script(h.into())),
                _ => Err(TxError::Invalid(format!(
                    "DRep {s:?} is not always_abstain, always_no_confidence, key:<hash> or script:<hash>"
                ))),
            },
        }
    }
}

/// What one transaction does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Register the stake key (paying the deposit) and delegate to a pool.
    RegisterAndDelegate {
        /// Pool id: 28-byte key hash, hex.
        pool: String,
        /// Key deposit from the protocol parameters.
        deposit: u64,
    },
    /// Delegate votes to a DRep (needed to withdraw rewards since Conway).
    VoteDelegation {
        /// DRep.
        drep: String,
    },
    /// Re-delegate a registered stake key to another pool.
    Delegate {
        /// Pool id hex.
        pool: String,
    },
    /// Withdraw the whole reward balance.
    Withdraw {
        /// The reward balance.
        amount: u64,
    },
    /// Deregister the stake key, withdrawing what is left and getting the
    /// deposit back.
    Deregister {
        /// Deposit refund.
        refund: u64,
        /// Remaining reward balance withdrawn in the same transaction.
        withdraw: u64,
    },
    /// Nothing but moving the inputs to one change output (consolidation).
    None,
}

/// Inputs, parameters, TTL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxParams {
    /// 0 for testnets, 1 for mainnet.
    pub network_id: u8,
    /// Fee per byte.
    pub min_fee_a: u64,
    /// Fixed fee.
    pub min_fee_b: u64,
    /// Last slot the transaction is valid in.
    pub ttl: u64,
    /// Inputs to spend (all of them).
    pub inputs: Vec<Utxo>,
    /// Smallest change output accepted.
    #[serde(default = "default_min_change")]
    pub min_change: u64,
}

fn default_min_change() -> u64 {
    1_000_000
}

/// Why a transaction could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// Malformed input.
    #[error("{0}")]
    Invalid(String),
    /// Not enough ada in the inputs.
    #[error(
        "insufficient UTxOs: inputs {inputs} lovelace cannot pay {needed} (fee, deposit and a change output of at least {min_change})"
    )]
    Insufficient {
        /// Sum of inputs (+ withdrawals and refunds).
        inputs: u64,
        /// What was needed.
        needed: u64,
        /// Smallest change.
        min_change: u64,
    },
}

fn hash28(what: &str, h: &str) -> Result<[u8; 28], TxError> {
    hex::decode(h)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| TxError::Invalid(format!("{what} {h:?} is not a 28-byte hash in hex")))
}

/// Base address bytes (key payment part, key stake part).
pub fn base_address(network_id: u8, payment: &[u8; 28], stake: &[u8; 28]) -> Vec<u8> {
    let mut a = vec![network_id & 0x0f];
    a.extend_from_slice(payment);
    a.extend_from_slice(stake);
    a
}

/// Reward (stake) address bytes.
pub fn reward_address(network_id: u8, stake: &[u8; 28]) -> Vec<u8> {
    let mut a = vec![0xe0 | (network_id & 0x0f)];
    a.extend_from_slice(stake);
    a
}

/// Bech32 of address bytes (`addr`/`stake`, `_test` on testnets).
pub fn bech32(bytes: &[u8]) -> String {
    pallas_addresses::Address::from_bytes(bytes)
        .ok()
        .and_then(|a| a.to_bech32().ok())
        .unwrap_or_default()
}

/// Bech32 (`pool1...`) of a pool id.
pub fn pool_bech32(hash: &[u8; 28]) -> String {
    bech32::encode::<bech32::Bech32>(bech32::Hrp::parse_unchecked("pool"), hash).unwrap_or_default()
}

/// A signed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// Body CBOR.
    pub body: Vec<u8>,
    /// Full transaction CBOR (what `/tx/submit` takes).
    pub tx: Vec<u8>,
    /// Transaction id: blake2b-256 of the body, hex.
    pub tx_hash: String,
    /// Fee paid.
    pub fee: u64,
}

fn stake_cred(w: &mut Writer, stake: &[u8; 28]) {
    w.array(2).uint(0).bytes(stake);
}

fn drep(w: &mut Writer, d: &DRep) -> Result<(), TxError> {
    match d {
        DRep::Key(h) => {
            w.array(2).uint(0).bytes(&hash28("DRep key hash", h)?);
        }
        DRep::Script(h) => {
            w.array(2).uint(1).bytes(&hash28("DRep script hash", h)?);
        }
        DRep::AlwaysAbstain => {
            w.array(1).uint(2);
        }
        DRep::AlwaysNoConfidence => {
            w.array(1).uint(3);
        }
    }
    Ok(())
}

/// Builds and signs `action` with the payment and stake keys.
pub fn build(
    action: &Action,
    payment: &LocalKey,
    stake: &LocalKey,
    p: &TxParams,
) -> Result<Signed, TxError> {
    if p.inputs.is_empty() {
        return Err(TxError::Insufficient {
            inputs: 0,
            needed: p.min_fee_b,
            min_change: p.min_change,
        });
    }
    let stake_hash = stake.key_hash();
    let address = base_address(p.network_id, &payment.key_hash(), &stake_hash);
    let (deposit, refund, withdrawal) = match action {
        Action::RegisterAndDelegate { deposit, .. } => (*deposit, 0, 0),
        Action::Withdraw { amount } => (0, 0, *amount),
        Action::Deregister { refund, withdraw } => (0, *refund, *withdraw),
        _ => (0, 0, 0),
    };
    // Certificates, encoded once.
    let mut certs: Vec<Vec<u8>> = Vec::new();
    match action {
        Action::RegisterAndDelegate { pool, deposit } => {
            let mut w = Writer::default();
            w.array(4).uint(11);
            stake_cred(&mut w, &stake_hash);
            w.bytes(&hash28("pool id", pool)?).uint(*deposit);
            certs.push(w.0);
        }
        Action::VoteDelegation { drep: d } => {
            let mut w = Writer::default();
            w.array(3).uint(9);
            stake_cred(&mut w, &stake_hash);
            drep(&mut w, &DRep::parse(d)?)?;
            certs.push(w.0);
        }
        Action::Delegate { pool } => {
            let mut w = Writer::default();
            w.array(3).uint(2);
            stake_cred(&mut w, &stake_hash);
            w.bytes(&hash28("pool id", pool)?);
            certs.push(w.0);
        }
        Action::Deregister { refund, .. } => {
            let mut w = Writer::default();
            w.array(3).uint(8);
            stake_cred(&mut w, &stake_hash);
            w.uint(*refund);
            certs.push(w.0);
        }
        Action::Withdraw { .. } | Action::None => {}
    }
    let needs_stake_witness = !certs.is_empty() || withdrawal > 0;
    let inputs_total: u64 = p
        .inputs
        .iter()
        .try_fold(0u64, |a, u| a.checked_add(u.lovelace))
        .ok_or_else(|| TxError::Invalid("inputs overflow".into()))?;
    let available = inputs_total
        .checked_add(withdrawal)
        .and_then(|t| t.checked_add(refund))
        .ok_or_else(|| TxError::Invalid("amounts overflow".into()))?;
    let mut fee = 0u64;
    for _ in 0..10 {
        let needed = fee.saturating_add(deposit).saturating_add(p.min_change);
        if available < needed {
            return Err(TxError::Insufficient {
                inputs: available,
                needed,
                min_change: p.min_change,
            });
        }
        let change = available - fee - deposit;
        let mut b = Writer::default();
        let fields = 4 + usize::from(!certs.is_empty()) + usize::from(withdrawal > 0);
        b.map(fields);
        b.uint(0).set(p.inputs.len());
        for u in &p.inputs {
            let h: [u8; 32] = hex::decode(&u.tx_hash)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    TxError::Invalid(format!("input hash {:?} is not 32 bytes of hex", u.tx_hash))
                })?;
            b.array(2).bytes(&h).uint(u.output_index);
        }
        b.uint(1).array(1).array(2).bytes(&address).uint(change);
        b.uint(2).uint(fee);
        b.uint(3).uint(p.ttl);
        if !certs.is_empty() {
            b.uint(4).set(certs.len());
            for c in &certs {
                b.raw(c);
            }
        }
        if withdrawal > 0 {
            b.uint(5)
                .map(1)
                .bytes(&reward_address(p.network_id, &stake_hash))
                .uint(withdrawal);
        }
        let body = b.0;
        let hash = Hasher::<256>::hash(&body);
        let mut signers: Vec<&LocalKey> = vec![payment];
        if needs_stake_witness {
            signers.push(stake);
        }
        let mut t = Writer::default();
        t.array(4).raw(&body).map(1).uint(0).set(signers.len());
        for k in &signers {
            t.array(2)
                .bytes(&k.public_key())
                .bytes(&k.sign(hash.as_ref()));
        }
        t.bool(true).null();
        let size = t.0.len() as u64;
        let min = p.min_fee_a.saturating_mul(size).saturating_add(p.min_fee_b);
        if min <= fee {
            return Ok(Signed {
                body,
                tx: t.0,
                tx_hash: hex::encode(hash.as_ref()),
                fee,
            });
        }
        fee = min;
    }
    Err(TxError::Invalid("the fee did not converge".into()))
}
