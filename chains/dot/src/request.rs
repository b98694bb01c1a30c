//! The offline signing request (`softstake tx sign --chain dot --request
//! FILE`): the call, nonce, mortality, tip, runtime versions and the
//! runtime's metadata file. Format: docs/tx-requests.md. sr25519 signatures
//! are randomised, so two signatures of one request differ; both verify.

use crate::tx::{self, Call, Payee, TxParams};
use serde::{Deserialize, Serialize};
use softstake_core::plugin::SignError;
use std::path::PathBuf;
use subxt::utils::AccountId32;

/// A call, as the request spells it.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case", deny_unknown_fields)]
pub enum CallSpec {
    /// Bond.
    Bond {
        /// Planck (string).
        value: String,
        /// `Staked` (default), `Stash`, or an SS58 account.
        #[serde(default)]
        payee: Option<String>,
    },
    /// Change where rewards go.
    SetPayee {
        /// `Staked`, `Stash`, or an SS58 account.
        payee: String,
    },
    /// Bond more.
    BondExtra {
        /// Planck (string).
        value: String,
    },
    /// Nominate.
    Nominate {
        /// SS58 validator stashes.
        targets: Vec<String>,
    },
    /// Unbond.
    Unbond {
        /// Planck (string).
        value: String,
    },
    /// Withdraw unbonded funds.
    WithdrawUnbonded {
        /// Slashing spans of the stash.
        num_slashing_spans: u32,
    },
    /// Rebond unlocking funds.
    Rebond {
        /// Planck (string).
        value: String,
    },
    /// Stop nominating.
    Chill,
    /// Pay out an era's rewards.
    PayoutStakers {
        /// SS58 validator stash.
        validator: String,
        /// Era.
        era: u32,
    },
    /// Several calls, all or nothing.
    BatchAll {
        /// Calls.
        calls: Vec<CallSpec>,
    },
    /// A call a staking proxy makes for the stash (`real`).
    Proxy {
        /// SS58 stash.
        real: String,
        /// The call.
        inner: Box<CallSpec>,
    },
}

/// Parses a payee: `Staked`, `Stash` or an SS58 account.
pub fn payee(s: &str) -> Result<Payee, SignError> {
    match s {
        "Staked" | "staked" => Ok(Payee::Staked),
        "Stash" | "stash" => Ok(Payee::Stash),
        other => Ok(Payee::Account(account(other)?)),
    }
}

fn planck(v: &str) -> Result<u128, SignError> {
    v.parse()
        .map_err(|_| SignError::Build(format!("{v:?} is not an amount in planck")))
}

fn account(s: &str) -> Result<AccountId32, SignError> {
    s.parse()
        .map_err(|_| SignError::Build(format!("{s:?} is not an SS58 address")))
}

impl CallSpec {
    /// The call.
    pub fn to_call(&self) -> Result<Call, SignError> {
        Ok(match self {
            CallSpec::Bond { value, payee: p } => Call::Bond {
                value: planck(value)?,
                payee: match p {
                    Some(p) => payee(p)?,
                    None => Payee::Staked,
                },
            },
            CallSpec::SetPayee { payee: p } => Call::SetPayee { payee: payee(p)? },
            CallSpec::Proxy { real, inner } => Call::Proxy {
                real: account(real)?,
                call: Box::new(inner.to_call()?),
            },
            CallSpec::BondExtra { value } => Call::BondExtra {
                value: planck(value)?,
            },
            CallSpec::Nominate { targets } => Call::Nominate {
                targets: targets
                    .iter()
                    .map(|t| account(t))
                    .collect::<Result<_, _>>()?,
            },
            CallSpec::Unbond { value } => Call::Unbond {
                value: planck(value)?,
            },
            CallSpec::WithdrawUnbonded { num_slashing_spans } => Call::WithdrawUnbonded {
                num_slashing_spans: *num_slashing_spans,
            },
            CallSpec::Rebond { value } => Call::Rebond {
                value: planck(value)?,
            },
            CallSpec::Chill => Call::Chill,
            CallSpec::PayoutStakers { validator, era } => Call::PayoutStakers {
                validator: account(validator)?,
                era: *era,
            },
            CallSpec::BatchAll { calls } => Call::BatchAll(
                calls
                    .iter()
                    .map(CallSpec::to_call)
                    .collect::<Result<_, _>>()?,
            ),
        })
    }
}

/// A request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// File holding the stash's secret URI or seed (mode 600).
    pub key_file: PathBuf,
    /// The runtime's metadata (`state_getMetadata`, as bytes).
    pub metadata_file: PathBuf,
    /// 0x-hex genesis hash.
    pub genesis_hash: String,
    /// Runtime spec version.
    pub spec_version: u32,
    /// Runtime transaction version.
    pub transaction_version: u32,
    /// Account nonce.
    pub nonce: u64,
    /// Tip, planck.
    #[serde(default)]
    pub tip: u64,
    /// Block the mortal era starts at.
    pub era_block: u64,
    /// Its 0x-hex hash.
    pub era_block_hash: String,
    /// Era length in blocks (a power of two, 4..=65536).
    pub era_period: u64,
    /// The call.
    pub call: CallSpec,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignResponse {
    /// The signer's SS58 address.
    pub address: String,
    /// The signed extrinsic, 0x-hex (`author_submitExtrinsic`).
    pub extrinsic: String,
    /// Its hash.
    pub hash: String,
}

fn h32(what: &str, v: &str) -> Result<[u8; 32], SignError> {
    hex::decode(v.trim_start_matches("0x"))
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| SignError::Build(format!("{what} {v:?} is not 32 bytes of hex")))
}

/// Builds and signs the request.
pub fn sign(req: &SignRequest) -> Result<SignResponse, SignError> {
    let secret = softstake_core::secret::read_key_file(&req.key_file)?;
    let uri: subxt_signer::SecretUri = secret.expose().trim().parse().map_err(|_| {
        SignError::Key(format!(
            "{}: not a secret URI or seed",
            req.key_file.display()
        ))
    })?;
    let key = subxt_signer::sr25519::Keypair::from_uri(&uri).map_err(|_| {
        SignError::Key(format!(
            "{}: not an sr25519 secret URI or seed",
            req.key_file.display()
        ))
    })?;
    if !(4..=65_536).contains(&req.era_period) || !req.era_period.is_power_of_two() {
        return Err(SignError::Build(format!(
            "era_period {} is not a power of two from 4 to 65536",
            req.era_period
        )));
    }
    let bytes = std::fs::read(&req.metadata_file)
        .map_err(|e| SignError::Build(format!("{}: {e}", req.metadata_file.display())))?;
    let meta = tx::metadata(&bytes)?;
    let p = TxParams {
        genesis_hash: h32("genesis_hash", &req.genesis_hash)?,
        spec_version: req.spec_version,
        transaction_version: req.transaction_version,
        nonce: req.nonce,
        tip: u128::from(req.tip),
        era_block: req.era_block,
        era_block_hash: h32("era_block_hash", &req.era_block_hash)?,
        era_period: req.era_period,
    };
    let signed = tx::sign(&meta, &req.call.to_call()?, &p, &key)?;
    Ok(SignResponse {
        address: AccountId32(key.public_key().0).to_string(),
        extrinsic: format!("0x{}", hex::encode(&signed.bytes)),
        hash: signed.hash,
    })
}

impl From<tx::TxError> for SignError {
    fn from(e: tx::TxError) -> Self {
        SignError::Build(e.to_string())
    }
}
