//! The offline signing request (`softstake tx sign --chain atom --request
//! FILE`): everything needed to build and sign one operation without a
//! node. Same request, same bytes. Format: docs/tx-requests.md.

use crate::keys::LocalKey;
use crate::tx::{SignedTx, TxParams, msgs_for, sign_tx};
use serde::{Deserialize, Serialize};
use softstake_core::Amount;
use softstake_core::adapter::OperationKind;
use softstake_core::plugin::SignError;
use softstake_core::secret::read_key_file;
use std::path::PathBuf;

/// A request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// Key file: 64 hex characters or a BIP-39 mnemonic (mode 600).
    pub key_file: PathBuf,
    /// Chain id.
    pub chain_id: String,
    /// Account number (auth module).
    pub account_number: u64,
    /// Sequence (auth module).
    pub sequence: u64,
    /// Fee in uatom (integer string).
    pub fee_amount: Amount,
    /// Gas limit.
    pub gas_limit: u64,
    /// Memo.
    #[serde(default)]
    pub memo: String,
    /// Last height it may be included at (0 or absent: none).
    #[serde(default)]
    pub timeout_height: u64,
    /// The operation, as the journal stores it (`{"kind": "delegate",
    /// "validator": ..., "amount": ...}`).
    pub operation: OperationKind,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignResponse {
    /// Signer address.
    pub address: String,
    /// TxRaw bytes, hex.
    pub tx_hex: String,
    /// Transaction hash (upper-case hex SHA-256).
    pub tx_hash: String,
}

/// Builds and signs the request's operation.
pub fn sign(req: &SignRequest) -> Result<SignResponse, SignError> {
    let key = LocalKey::parse(&read_key_file(&req.key_file)?)?;
    let SignedTx { bytes, hash } = sign_with(&key, req)?;
    Ok(SignResponse {
        address: crate::keys::Signer::address(&key),
        tx_hex: hex::encode(bytes),
        tx_hash: hash,
    })
}

/// [`sign`] with a key already loaded.
pub fn sign_with(key: &LocalKey, req: &SignRequest) -> Result<SignedTx, SignError> {
    let msgs = msgs_for(&req.operation, &[])?;
    Ok(sign_tx(
        key,
        &TxParams {
            chain_id: req.chain_id.clone(),
            account_number: req.account_number,
            sequence: req.sequence,
            fee_amount: req.fee_amount,
            gas_limit: req.gas_limit,
            memo: req.memo.clone(),
            timeout_height: req.timeout_height,
        },
        &msgs,
    )?)
}

impl From<crate::keys::KeyError> for SignError {
    fn from(e: crate::keys::KeyError) -> Self {
        SignError::Key(e.to_string())
    }
}

impl From<crate::tx::TxError> for SignError {
    fn from(e: crate::tx::TxError) -> Self {
        SignError::Build(e.to_string())
    }
}
