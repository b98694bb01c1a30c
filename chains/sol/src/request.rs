//! The offline signing request (`softstake tx sign --chain sol --request
//! FILE`): an explicit [`Action`] with the blockhash and parameters, so the
//! same request always gives the same bytes. Format: docs/tx-requests.md.

use crate::keys::LocalKey;
use crate::tx::{self, Action, TxParams};
use serde::{Deserialize, Serialize};
use softstake_core::plugin::SignError;
use std::path::PathBuf;

/// A request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// solana-keygen JSON keypair file (mode 600): fee payer and staker.
    pub key_file: PathBuf,
    /// Blockhash, reserve, priority fee, withdraw authority.
    #[serde(flatten)]
    pub params: TxParams,
    /// What to sign.
    pub action: Action,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignResponse {
    /// Fee payer / staker address.
    pub address: String,
    /// The seed-derived stake account the action creates, if it creates one.
    pub new_stake_account: Option<String>,
    /// Transaction id (first signature, base58).
    pub signature: String,
    /// Wire bytes, base64 (what `sendTransaction` takes).
    pub transaction_base64: String,
}

/// Builds and signs the request's action.
pub fn sign(req: &SignRequest) -> Result<SignResponse, SignError> {
    let text = softstake_core::secret::read_key_file(&req.key_file)?;
    let key = LocalKey::parse(text.expose())?;
    let signed = tx::build(&req.action, &key, &req.params)?;
    let new_stake_account = match &req.action {
        Action::CreateAndDelegate { seed_index, .. }
        | Action::SplitAndDeactivate { seed_index, .. } => {
            Some(tx::stake_address(&key.pubkey(), *seed_index).to_string())
        }
        _ => None,
    };
    use base64::Engine as _;
    Ok(SignResponse {
        address: key.address(),
        new_stake_account,
        signature: signed.signature,
        transaction_base64: base64::engine::general_purpose::STANDARD.encode(&signed.bytes),
    })
}

impl From<crate::keys::KeyError> for SignError {
    fn from(e: crate::keys::KeyError) -> Self {
        SignError::Key(e.to_string())
    }
}

impl From<tx::TxError> for SignError {
    fn from(e: tx::TxError) -> Self {
        SignError::Build(e.to_string())
    }
}
