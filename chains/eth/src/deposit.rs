//! Deposit data as staking-deposit-cli writes it (`deposit_data-*.json`),
//! and its verification before any ether moves: lengths, withdrawal
//! credentials (0x01 or 0x02 pointing to the custody address), amount,
//! both SSZ roots recomputed, the fork version, and the BLS signature over
//! the deposit domain (blst, proof-of-possession scheme).

use crate::ssz;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// 1 ETH in gwei.
pub const GWEI_PER_ETH: u64 = 1_000_000_000;
/// What a 0x01 validator takes.
pub const STAKE_0X01_GWEI: u64 = 32 * GWEI_PER_ETH;
/// Most a 0x02 (compounding) validator takes (EIP-7251).
pub const MAX_0X02_GWEI: u64 = 2048 * GWEI_PER_ETH;
const BLS_DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

/// One entry of a deposit_data-*.json file (hex without 0x, as the CLI
/// writes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepositEntry {
    /// BLS public key, 48 bytes.
    pub pubkey: String,
    /// Withdrawal credentials, 32 bytes.
    pub withdrawal_credentials: String,
    /// Amount in gwei.
    pub amount: u64,
    /// BLS signature, 96 bytes.
    pub signature: String,
    /// hash_tree_root(DepositMessage).
    pub deposit_message_root: String,
    /// hash_tree_root(DepositData).
    pub deposit_data_root: String,
    /// Fork version the signature is for.
    pub fork_version: String,
    /// Network name (informative).
    #[serde(default)]
    pub network_name: Option<String>,
    /// CLI version (informative).
    #[serde(default)]
    pub deposit_cli_version: Option<String>,
}

/// A deposit that passed every check, in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDeposit {
    /// BLS public key.
    pub pubkey: [u8; 48],
    /// Withdrawal credentials.
    pub withdrawal_credentials: [u8; 32],
    /// Gwei.
    pub amount_gwei: u64,
    /// Signature.
    pub signature: [u8; 96],
    /// Deposit data root.
    pub deposit_data_root: [u8; 32],
    /// 0x01 or 0x02.
    pub credential_type: u8,
}

impl VerifiedDeposit {
    /// The validator's public key as 0x-hex.
    pub fn pubkey_hex(&self) -> String {
        format!("0x{}", hex::encode(self.pubkey))
    }
}

/// Why a deposit entry was refused. Nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DepositError {
    /// A field is not hex of the right length.
    #[error("deposit {pubkey}: {field} is not {len} bytes of hex")]
    Length {
        /// Entry's pubkey as given.
        pubkey: String,
        /// Field.
        field: &'static str,
        /// Expected length.
        len: usize,
    },
    /// Any other failed check.
    #[error("deposit {pubkey}: {reason}")]
    Invalid {
        /// Entry's pubkey as given.
        pubkey: String,
        /// Why.
        reason: String,
    },
    /// The file could not be read.
    #[error("deposit data file {path}: {reason}")]
    File {
        /// Path.
        path: String,
        /// Why.
        reason: String,
    },
}

fn fixed<const N: usize>(
    pubkey: &str,
    field: &'static str,
    v: &str,
) -> Result<[u8; N], DepositError> {
    let bytes = hex::decode(v.trim_start_matches("0x")).map_err(|_| DepositError::Length {
        pubkey: pubkey.to_owned(),
        field,
        len: N,
    })?;
    bytes.try_into().map_err(|_| DepositError::Length {
        pubkey: pubkey.to_owned(),
        field,
        len: N,
    })
}

/// Checks `e` for `custody` (20-byte address) on the network with
/// `fork_version`.
pub fn verify(
    e: &DepositEntry,
    custody: &[u8; 20],
    fork_version: [u8; 4],
) -> Result<VerifiedDeposit, DepositError> {
    let id = e.pubkey.clone();
    let bad = |reason: String| DepositError::Invalid {
        pubkey: id.clone(),
        reason,
    };
    let pubkey: [u8; 48] = fixed(&id, "pubkey", &e.pubkey)?;
    let wc: [u8; 32] = fixed(&id, "withdrawal_credentials", &e.withdrawal_credentials)?;
    let signature: [u8; 96] = fixed(&id, "signature", &e.signature)?;
    let message_root: [u8; 32] = fixed(&id, "deposit_message_root", &e.deposit_message_root)?;
    let data_root: [u8; 32] = fixed(&id, "deposit_data_root", &e.deposit_data_root)?;
    let fork: [u8; 4] = fixed(&id, "fork_version", &e.fork_version)?;
    let credential_type = wc[0];
    if !matches!(credential_type, 0x01 | 0x02) || wc[1..12] != [0u8; 11] {
        return Err(bad(format!(
            "withdrawal credentials 0x{} are not 0x01/0x02 execution-layer credentials",
            hex::encode(wc)
        )));
    }
    if wc[12..] != custody[..] {
        return Err(bad(format!(
            "withdrawal credentials point to 0x{}, not to the custody address 0x{}",
            hex::encode(&wc[12..]),
            hex::encode(custody)
        )));
    }
    let amount_ok = match credential_type {
        0x01 => e.amount == STAKE_0X01_GWEI,
        _ => {
            (STAKE_0X01_GWEI..=MAX_0X02_GWEI).contains(&e.amount)
                && e.amount.is_multiple_of(GWEI_PER_ETH)
        }
    };
    if !amount_ok {
        return Err(bad(format!(
            "amount {} gwei is not allowed for 0x{credential_type:02x} credentials (0x01: exactly 32 ETH; 0x02: whole ETH from 32 to 2048)",
            e.amount
        )));
    }
    if fork != fork_version {
        return Err(bad(format!(
            "signed for fork version 0x{}, this network's is 0x{}",
            hex::encode(fork),
            hex::encode(fork_version)
        )));
    }
    let computed_message = ssz::deposit_message_root(&pubkey, &wc, e.amount);
    if computed_message != message_root {
        return Err(bad("deposit_message_root does not match the entry".into()));
    }
    let computed_data = ssz::deposit_data_root(&pubkey, &wc, e.amount, &signature);
    if computed_data != data_root {
        return Err(bad("deposit_data_root does not match the entry".into()));
    }
    let signing = ssz::signing_root(&computed_message, &ssz::deposit_domain(fork_version));
    let pk = blst::min_pk::PublicKey::key_validate(&pubkey)
        .map_err(|e| bad(format!("pubkey is not a valid BLS public key ({e:?})")))?;
    let sig = blst::min_pk::Signature::sig_validate(&signature, true)
        .map_err(|e| bad(format!("signature is not a valid BLS signature ({e:?})")))?;
    if sig.verify(true, &signing, BLS_DST, &[], &pk, true) != blst::BLST_ERROR::BLST_SUCCESS {
        return Err(bad(
            "BLS signature does not verify for the deposit domain".into()
        ));
    }
    Ok(VerifiedDeposit {
        pubkey,
        withdrawal_credentials: wc,
        amount_gwei: e.amount,
        signature,
        deposit_data_root: computed_data,
        credential_type,
    })
}

/// Reads every `deposit_data-*.json` file in `dir` (entries in file-name
/// order, then file order). Unverified: call [`verify`] on each.
pub fn read_dir(dir: &Path) -> Result<Vec<DepositEntry>, DepositError> {
    let file_err = |p: &Path, reason: String| DepositError::File {
        path: p.display().to_string(),
        reason,
    };
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| file_err(dir, e.to_string()))?
        .filter_map(Result::ok)
        .map(|d| d.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("deposit_data") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| file_err(&f, e.to_string()))?;
        let entries: Vec<DepositEntry> =
            serde_json::from_str(&text).map_err(|e| file_err(&f, e.to_string()))?;
        out.extend(entries);
    }
    Ok(out)
}
