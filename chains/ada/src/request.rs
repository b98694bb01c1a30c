//! The offline signing request (`softstake tx sign --chain ada --request
//! FILE`): the inputs, parameters, TTL and action, signed with the payment
//! and stake keys. Same request, same bytes. Format: docs/tx-requests.md.

use crate::keys::LocalKey;
use crate::tx::{self, Action, TxParams};
use serde::{Deserialize, Serialize};
use softstake_core::plugin::SignError;
use std::path::PathBuf;

/// A request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// Payment key (.skey, mode 600).
    pub payment_key_file: PathBuf,
    /// Stake key (.skey, mode 600).
    pub stake_key_file: PathBuf,
    /// Inputs, fee parameters, TTL.
    #[serde(flatten)]
    pub params: TxParams,
    /// What to sign.
    pub action: Action,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignResponse {
    /// Custody base address.
    pub address: String,
    /// Transaction id.
    pub tx_hash: String,
    /// Fee paid.
    pub fee: u64,
    /// Full signed CBOR, hex (what `/tx/submit` takes).
    pub tx_cbor: String,
}

fn key(path: &std::path::Path) -> Result<LocalKey, SignError> {
    let t = softstake_core::secret::read_key_file(path)?;
    Ok(LocalKey::parse(t.expose())?)
}

/// Builds and signs the request.
pub fn sign(req: &SignRequest) -> Result<SignResponse, SignError> {
    let payment = key(&req.payment_key_file)?;
    let stake = key(&req.stake_key_file)?;
    let s = tx::build(&req.action, &payment, &stake, &req.params)?;
    Ok(SignResponse {
        address: tx::bech32(&tx::base_address(
            req.params.network_id,
            &payment.key_hash(),
            &stake.key_hash(),
        )),
        tx_hash: s.tx_hash,
        fee: s.fee,
        tx_cbor: hex::encode(&s.tx),
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
