//! Staking extrinsics for Polkadot-SDK chains carrying a Staking pallet (a
//! relay chain's pallet-staking, as Paseo's genesis; Asset Hub's
//! pallet-staking-async), built with subxt's dynamic API against the runtime's own
//! metadata and signed sr25519. Call data and signer payloads equal
//! @polkadot/types' (tests/vectors/dot); sr25519 signatures are randomised,
//! so the tests verify signatures instead of comparing them.

use std::sync::Arc;
use subxt::config::substrate::{
    SpecVersionForRange, SubstrateConfig, SubstrateExtrinsicParamsBuilder,
};
use subxt::dynamic::Value;
use subxt::metadata::Metadata;
use subxt::utils::{AccountId32, H256};

/// A staking call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `Staking.bond(value, payee)`.
    Bond {
        /// Planck.
        value: u128,
        /// Where rewards go.
        payee: Payee,
    },
    /// `Staking.set_payee(payee)`.
    SetPayee {
        /// Where rewards go.
        payee: Payee,
    },
    /// `Staking.bond_extra(value)`.
    BondExtra {
        /// Planck.
        value: u128,
    },
    /// `Staking.nominate(targets)`.
    Nominate {
        /// Validator stashes.
        targets: Vec<AccountId32>,
    },
    /// `Staking.unbond(value)`.
    Unbond {
        /// Planck.
        value: u128,
    },
    /// `Staking.withdraw_unbonded(num_slashing_spans)`.
    WithdrawUnbonded {
        /// Slashing spans of the stash.
        num_slashing_spans: u32,
    },
    /// `Staking.rebond(value)`.
    Rebond {
        /// Planck.
        value: u128,
    },
    /// `Staking.chill()`.
    Chill,
    /// `Staking.payout_stakers(validator_stash, era)`.
    PayoutStakers {
        /// Validator.
        validator: AccountId32,
        /// Era.
        era: u32,
    },
    /// `Staking.payout_stakers_by_page(validator_stash, era, page)`
    /// (staking-async: exposures are paged, each page paid on its own).
    PayoutStakersByPage {
        /// Validator.
        validator: AccountId32,
        /// Era.
        era: u32,
        /// Exposure page.
        page: u32,
    },
    /// `Balances.transfer_keep_alive(dest, value)`: coins out of the signer
    /// (not a staking operation: the devnet's and tests' transfers, such as
    /// repaying the treasury).
    TransferKeepAlive {
        /// Recipient.
        dest: AccountId32,
        /// Planck.
        value: u128,
    },
    /// `Utility.batch_all(calls)`.
    BatchAll(Vec<Call>),
    /// `Proxy.proxy(real, None, call)`: `call` dispatched as `real` by a
    /// proxy account (the staking proxy signs; the stash is `real`).
    Proxy {
        /// The stash the proxy acts for.
        real: AccountId32,
        /// The call.
        call: Box<Call>,
    },
}

/// `RewardDestination`: where staking rewards are paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payee {
    /// Added to the bond (compounding).
    Staked,
    /// Paid to the stash, unbonded (liquid).
    Stash,
    /// Paid to another account.
    Account(AccountId32),
}

impl Payee {
    fn value(&self) -> Value {
        match self {
            Payee::Staked => Value::unnamed_variant("Staked", []),
            Payee::Stash => Value::unnamed_variant("Stash", []),
            Payee::Account(a) => Value::unnamed_variant("Account", [account(a)]),
        }
    }
}

fn account(a: &AccountId32) -> Value {
    Value::from_bytes(a.0)
}

fn multi(a: &AccountId32) -> Value {
    Value::unnamed_variant("Id", [account(a)])
}

impl Call {
    /// The call as a dynamic value: (pallet, call, fields).
    pub fn parts(&self) -> (&'static str, &'static str, Vec<Value>) {
        match self {
            Call::Bond { value, payee } => {
                ("Staking", "bond", vec![Value::u128(*value), payee.value()])
            }
            Call::SetPayee { payee } => ("Staking", "set_payee", vec![payee.value()]),
            Call::BondExtra { value } => ("Staking", "bond_extra", vec![Value::u128(*value)]),
            Call::Nominate { targets } => (
                "Staking",
                "nominate",
                vec![Value::unnamed_composite(targets.iter().map(multi))],
            ),
            Call::Unbond { value } => ("Staking", "unbond", vec![Value::u128(*value)]),
            Call::WithdrawUnbonded { num_slashing_spans } => (
                "Staking",
                "withdraw_unbonded",
                vec![Value::u128(u128::from(*num_slashing_spans))],
            ),
            Call::Rebond { value } => ("Staking", "rebond", vec![Value::u128(*value)]),
            Call::Chill => ("Staking", "chill", vec![]),
            Call::PayoutStakers { validator, era } => (
                "Staking",
                "payout_stakers",
                vec![account(validator), Value::u128(u128::from(*era))],
            ),
            Call::PayoutStakersByPage {
                validator,
                era,
                page,
            } => (
                "Staking",
                "payout_stakers_by_page",
                vec![
                    account(validator),
                    Value::u128(u128::from(*era)),
                    Value::u128(u128::from(*page)),
                ],
            ),
            Call::TransferKeepAlive { dest, value } => (
                "Balances",
                "transfer_keep_alive",
                vec![multi(dest), Value::u128(*value)],
            ),
            Call::BatchAll(calls) => (
                "Utility",
                "batch_all",
                vec![Value::unnamed_composite(
                    calls.iter().map(|c| c.as_runtime_call()),
                )],
            ),
            Call::Proxy { real, call } => (
                "Proxy",
                "proxy",
                vec![
                    multi(real),
                    Value::unnamed_variant("None", []),
                    call.as_runtime_call(),
                ],
            ),
        }
    }

    /// The call as a `RuntimeCall` value (`Pallet(Call { .. })`), for batches.
    fn as_runtime_call(&self) -> Value {
        let (pallet, call, fields) = self.parts();
        Value::unnamed_variant(pallet, [Value::unnamed_variant(call, fields)])
    }
}

/// Why an extrinsic could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// Metadata, encoding or signing failed.
    #[error("{0}")]
    Invalid(String),
}

/// What signing needs besides the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxParams {
    /// Genesis hash.
    pub genesis_hash: [u8; 32],
    /// Runtime spec version.
    pub spec_version: u32,
    /// Runtime transaction version.
    pub transaction_version: u32,
    /// Account nonce.
    pub nonce: u64,
    /// Tip, planck.
    pub tip: u128,
    /// Mortality: block number and hash the era starts at, and its length.
    pub era_block: u64,
    /// Hash of `era_block`.
    pub era_block_hash: [u8; 32],
    /// Era period in blocks.
    pub era_period: u64,
}

/// Decodes runtime metadata (`RuntimeMetadataPrefixed`, "meta"...).
pub fn metadata(bytes: &[u8]) -> Result<Arc<Metadata>, TxError> {
    Metadata::decode_from(bytes)
        .map(Arc::new)
        .map_err(|e| TxError::Invalid(format!("runtime metadata: {e}")))
}

fn client(meta: &Arc<Metadata>, p: &TxParams) -> subxt::client::OfflineClient<SubstrateConfig> {
    let config = SubstrateConfig::builder()
        .set_genesis_hash(H256(p.genesis_hash))
        .set_metadata_for_spec_versions([(p.spec_version, meta.clone())])
        .set_spec_version_for_block_ranges([SpecVersionForRange {
            block_range: 0..u64::MAX,
            spec_version: p.spec_version,
            transaction_version: p.transaction_version,
        }])
        .build();
    subxt::client::OfflineClient::new_with_config(config)
}

/// Call data (pallet index, call index, arguments) of `call`.
pub fn call_data(meta: &Arc<Metadata>, call: &Call, p: &TxParams) -> Result<Vec<u8>, TxError> {
    let (pallet, name, fields) = call.parts();
    dynamic_call_data(meta, p, pallet, name, fields)
}

/// Call data of any call of the runtime, its arguments as dynamic values
/// (the test node's relay-chain messages use it).
pub fn dynamic_call_data(
    meta: &Arc<Metadata>,
    p: &TxParams,
    pallet: &str,
    name: &str,
    fields: Vec<Value>,
) -> Result<Vec<u8>, TxError> {
    let payload = subxt::dynamic::tx(pallet, name, fields);
    let c = client(meta, p);
    let at = c
        .at_block(p.era_block)
        .map_err(|e| TxError::Invalid(e.to_string()))?;
    at.tx()
        .call_data(&payload)
        .map_err(|e| TxError::Invalid(e.to_string()))
}

/// The payload a signer signs for `call` (v4 extrinsic, mortal).
pub fn signer_payload(meta: &Arc<Metadata>, call: &Call, p: &TxParams) -> Result<Vec<u8>, TxError> {
    let (pallet, name, fields) = call.parts();
    let payload = subxt::dynamic::tx(pallet, name, fields);
    let c = client(meta, p);
    let at = c
        .at_block(p.era_block)
        .map_err(|e| TxError::Invalid(e.to_string()))?;
    let params = SubstrateExtrinsicParamsBuilder::<SubstrateConfig>::new()
        .nonce(p.nonce)
        .tip(p.tip)
        .mortal_from_unchecked(p.era_period, p.era_block, H256(p.era_block_hash))
        .build();
    let signable = at
        .tx()
        .create_v4_signable_offline(&payload, params)
        .map_err(|e| TxError::Invalid(e.to_string()))?;
    signable
        .signer_payload()
        .map_err(|e| TxError::Invalid(e.to_string()))
}

/// A signed extrinsic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// SCALE-encoded extrinsic (what `author_submitExtrinsic` takes).
    pub bytes: Vec<u8>,
    /// blake2-256 of the bytes, 0x-hex: the extrinsic hash.
    pub hash: String,
}

/// Builds and signs `call` with `key` (sr25519).
pub fn sign(
    meta: &Arc<Metadata>,
    call: &Call,
    p: &TxParams,
    key: &subxt_signer::sr25519::Keypair,
) -> Result<Signed, TxError> {
    let (pallet, name, fields) = call.parts();
    let payload = subxt::dynamic::tx(pallet, name, fields);
    let c = client(meta, p);
    let at = c
        .at_block(p.era_block)
        .map_err(|e| TxError::Invalid(e.to_string()))?;
    let params = SubstrateExtrinsicParamsBuilder::<SubstrateConfig>::new()
        .nonce(p.nonce)
        .tip(p.tip)
        .mortal_from_unchecked(p.era_period, p.era_block, H256(p.era_block_hash))
        .build();
    let mut signable = at
        .tx()
        .create_v4_signable_offline(&payload, params)
        .map_err(|e| TxError::Invalid(e.to_string()))?;
    let signed = signable
        .sign(key)
        .map_err(|e| TxError::Invalid(e.to_string()))?;
    Ok(Signed {
        bytes: signed.encoded().to_vec(),
        hash: format!("{:?}", signed.hash()),
    })
}
