//! The offline signing request (`softstake tx sign --chain eth --request
//! FILE`). A deposit is given as a deposit data entry and verified exactly
//! as the daemon does before it is signed. Format: docs/tx-requests.md.

use crate::deposit::{self, DepositEntry};
use crate::keys::LocalKey;
use crate::tx::{self, Action, TxParams};
use serde::{Deserialize, Serialize};
use softstake_core::plugin::SignError;
use std::path::PathBuf;

/// What to sign.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RequestAction {
    /// A deposit from staking-deposit-cli deposit data.
    Deposit {
        /// The entry, as in deposit_data-*.json.
        entry: DepositEntry,
        /// Genesis fork version (0x + 8 hex digits) the entry must be for.
        fork_version: String,
    },
    /// An EIP-7002 withdrawal request (amount 0: full exit).
    WithdrawalRequest {
        /// 0x-hex validator pubkey.
        pubkey: String,
        /// Gwei (0: exit).
        amount_gwei: u64,
        /// Fee read from the request contract, wei.
        fee_wei: u64,
    },
}

/// A request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// Hex secp256k1 key file (mode 600).
    pub key_file: PathBuf,
    /// Nonce, fees, gas, contracts.
    #[serde(flatten)]
    pub params: TxParams,
    /// What to sign.
    pub action: RequestAction,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignResponse {
    /// Custody address.
    pub address: String,
    /// EIP-2718 bytes, 0x-hex (eth_sendRawTransaction).
    pub raw: String,
    /// Transaction hash.
    pub hash: String,
}

/// Builds and signs the request.
pub fn sign(req: &SignRequest) -> Result<SignResponse, SignError> {
    let text = softstake_core::secret::read_key_file(&req.key_file)?;
    let key = LocalKey::parse(text.expose(), None)?;
    let action = match &req.action {
        RequestAction::Deposit {
            entry,
            fork_version,
        } => {
            let fork: [u8; 4] = hex::decode(fork_version.trim_start_matches("0x"))
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    tx::TxError::Invalid(format!(
                        "fork_version {fork_version:?} is not 4 bytes of hex"
                    ))
                })?;
            let d = deposit::verify(entry, &key.address().into_array(), fork)?;
            Action::Deposit {
                pubkey: d.pubkey_hex(),
                withdrawal_credentials: format!("0x{}", hex::encode(d.withdrawal_credentials)),
                signature: format!("0x{}", hex::encode(d.signature)),
                deposit_data_root: format!("0x{}", hex::encode(d.deposit_data_root)),
                amount_gwei: d.amount_gwei,
            }
        }
        RequestAction::WithdrawalRequest {
            pubkey,
            amount_gwei,
            fee_wei,
        } => Action::WithdrawalRequest {
            pubkey: pubkey.clone(),
            amount_gwei: *amount_gwei,
            fee_wei: *fee_wei,
        },
    };
    let signed = tx::build(&action, &key, &req.params)?;
    Ok(SignResponse {
        address: key.address().to_checksum(None),
        raw: format!("0x{}", hex::encode(&signed.bytes)),
        hash: signed.hash,
    })
}

impl From<crate::keys::KeyError> for SignError {
    fn from(e: crate::keys::KeyError) -> Self {
        SignError::Key(e.to_string())
    }
}

impl From<deposit::DepositError> for SignError {
    fn from(e: deposit::DepositError) -> Self {
        SignError::Build(e.to_string())
    }
}

impl From<tx::TxError> for SignError {
    fn from(e: tx::TxError) -> Self {
        SignError::Build(e.to_string())
    }
}
