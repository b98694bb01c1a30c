//! The offline signing request (`softstake tx sign --chain xtz --request
//! FILE`). Same request, same bytes. Format: docs/tx-requests.md.

use crate::forge::{Content, forge, operation_hash};
use crate::keys::{LocalKey, Signer};
use crate::ops::{AccountView, Mode, kinds_for};
use serde::{Deserialize, Serialize};
use softstake_core::adapter::OperationKind;
use softstake_core::plugin::SignError;
use softstake_core::secret::read_key_file;
use std::path::PathBuf;

/// A request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// Key file holding an edsk (mode 600).
    pub key_file: PathBuf,
    /// Block hash the operation is anchored to.
    pub branch: String,
    /// Counter of the first manager operation (account counter + 1).
    pub counter: u64,
    /// Fee per manager operation, mutez.
    pub fee: u64,
    /// Gas limit per manager operation.
    pub gas_limit: u64,
    /// Storage limit per manager operation.
    #[serde(default)]
    pub storage_limit: u64,
    /// `delegation` or `staking`.
    pub mode: Mode,
    /// Whether the account's key is already revealed (else a reveal comes first).
    pub revealed: bool,
    /// The account's current delegate, if any.
    #[serde(default)]
    pub current_delegate: Option<String>,
    /// The operation, as the journal stores it.
    pub operation: OperationKind,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignResponse {
    /// Source tz1.
    pub address: String,
    /// forged || signature, hex (what `/injection/operation` takes).
    pub signed_hex: String,
    /// The operation hash (`o...`).
    pub operation_hash: String,
}

/// Forges and signs the contents; returns forged || signature.
pub fn sign_contents(
    key: &dyn Signer,
    branch: &str,
    contents: &[Content],
) -> Result<Vec<u8>, SignError> {
    let mut bytes = forge(branch, contents)?;
    let sig = key.sign_operation(&bytes);
    bytes.extend_from_slice(&sig);
    Ok(bytes)
}

/// Builds and signs the request's operation.
pub fn sign(req: &SignRequest) -> Result<SignResponse, SignError> {
    let key = LocalKey::parse(&read_key_file(&req.key_file)?)?;
    let kinds = kinds_for(
        &req.operation,
        req.mode,
        &AccountView {
            revealed: req.revealed,
            delegate: req.current_delegate.clone(),
        },
        &key.public_key(),
    )?;
    let contents: Vec<Content> = kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| Content {
            source: key.address(),
            fee: u128::from(req.fee),
            counter: u128::from(req.counter) + i as u128,
            gas_limit: u128::from(req.gas_limit),
            storage_limit: u128::from(req.storage_limit),
            kind,
        })
        .collect();
    let signed = sign_contents(&key, &req.branch, &contents)?;
    Ok(SignResponse {
        address: key.address(),
        operation_hash: operation_hash(&signed),
        signed_hex: hex::encode(signed),
    })
}

impl From<crate::keys::KeyError> for SignError {
    fn from(e: crate::keys::KeyError) -> Self {
        SignError::Key(e.to_string())
    }
}

impl From<crate::forge::ForgeError> for SignError {
    fn from(e: crate::forge::ForgeError) -> Self {
        SignError::Build(e.to_string())
    }
}
