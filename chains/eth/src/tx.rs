//! The transactions softstake sends on Ethereum, built and signed here as
//! EIP-1559 transactions with alloy; byte for byte equal to viem's
//! (tests/vectors/eth).
//!
//! - a deposit: `deposit(pubkey, withdrawal_credentials, signature,
//!   deposit_data_root)` on the deposit contract, with the amount as value;
//! - an EIP-7002 withdrawal request: calldata `pubkey (48) ++ amount_gwei
//!   (8, big endian)` to the withdrawal request contract, with the fee read
//!   from the contract as value; amount 0 is a full exit.

use crate::keys::LocalKey;
use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::eip2718::Encodable2718;
use alloy::network::TxSignerSync;
use alloy::primitives::{Address, Bytes, FixedBytes, TxKind, U256};
use alloy::sol_types::SolCall;
use serde::{Deserialize, Serialize};

alloy::sol! {
    /// The deposit contract (consensus spec, deposit_contract.md).
    interface IDepositContract {
        /// Deposits a validator.
        function deposit(bytes pubkey, bytes withdrawal_credentials, bytes signature, bytes32 deposit_data_root) external payable;
        /// The deposit tree's root.
        function get_deposit_root() external view returns (bytes32);
        /// Deposits so far (8 bytes little endian).
        function get_deposit_count() external view returns (bytes);
        /// One deposit.
        event DepositEvent(bytes pubkey, bytes withdrawal_credentials, bytes amount, bytes signature, bytes index);
    }
}

/// Mainnet's EIP-7002 withdrawal request contract.
pub const WITHDRAWAL_REQUEST_CONTRACT: &str = "0x00000961Ef480Eb55e80D19ad83579A64c007002";

/// What one transaction does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    /// A verified deposit.
    Deposit {
        /// 0x-hex BLS pubkey (48 bytes).
        pubkey: String,
        /// 0x-hex withdrawal credentials.
        withdrawal_credentials: String,
        /// 0x-hex BLS signature.
        signature: String,
        /// 0x-hex deposit data root.
        deposit_data_root: String,
        /// Gwei.
        amount_gwei: u64,
    },
    /// An EIP-7002 withdrawal request (0: full exit).
    WithdrawalRequest {
        /// 0x-hex BLS pubkey of the validator.
        pubkey: String,
        /// Gwei to withdraw; 0 exits the validator.
        amount_gwei: u64,
        /// Fee paid to the request contract, wei.
        fee_wei: u64,
    },
}

/// Nonce, fees, gas and the contracts' addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxParams {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Account nonce.
    pub nonce: u64,
    /// Max fee per gas, wei.
    pub max_fee_per_gas: u64,
    /// Max priority fee per gas, wei.
    pub max_priority_fee_per_gas: u64,
    /// Gas limit.
    pub gas_limit: u64,
    /// Deposit contract address.
    pub deposit_contract: String,
    /// Withdrawal request contract address.
    #[serde(default = "default_request_contract")]
    pub withdrawal_request_contract: String,
}

fn default_request_contract() -> String {
    WITHDRAWAL_REQUEST_CONTRACT.into()
}

/// Why a transaction could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// A field is malformed.
    #[error("{0}")]
    Invalid(String),
}

fn hex_bytes<const N: usize>(what: &str, v: &str) -> Result<[u8; N], TxError> {
    hex::decode(v.trim_start_matches("0x"))
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| TxError::Invalid(format!("{what} {v:?} is not {N} bytes of hex")))
}

/// Parses an address.
pub fn parse_address(what: &str, v: &str) -> Result<Address, TxError> {
    v.parse::<Address>()
        .map_err(|_| TxError::Invalid(format!("{what} {v:?} is not an Ethereum address")))
}

/// `to`, value and calldata of `action`.
pub fn call_of(action: &Action, p: &TxParams) -> Result<(Address, U256, Bytes), TxError> {
    match action {
        Action::Deposit {
            pubkey,
            withdrawal_credentials,
            signature,
            deposit_data_root,
            amount_gwei,
        } => {
            let pk: [u8; 48] = hex_bytes("pubkey", pubkey)?;
            let wc: [u8; 32] = hex_bytes("withdrawal_credentials", withdrawal_credentials)?;
            let sig: [u8; 96] = hex_bytes("signature", signature)?;
            let root: [u8; 32] = hex_bytes("deposit_data_root", deposit_data_root)?;
            let data = IDepositContract::depositCall {
                pubkey: Bytes::copy_from_slice(&pk),
                withdrawal_credentials: Bytes::copy_from_slice(&wc),
                signature: Bytes::copy_from_slice(&sig),
                deposit_data_root: FixedBytes(root),
            }
            .abi_encode();
            let value = U256::from(*amount_gwei) * U256::from(1_000_000_000u64);
            Ok((
                parse_address("deposit_contract", &p.deposit_contract)?,
                value,
                data.into(),
            ))
        }
        Action::WithdrawalRequest {
            pubkey,
            amount_gwei,
            fee_wei,
        } => {
            let pk: [u8; 48] = hex_bytes("pubkey", pubkey)?;
            let mut data = pk.to_vec();
            data.extend_from_slice(&amount_gwei.to_be_bytes());
            Ok((
                parse_address(
                    "withdrawal_request_contract",
                    &p.withdrawal_request_contract,
                )?,
                U256::from(*fee_wei),
                data.into(),
            ))
        }
    }
}

/// A signed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// EIP-2718 bytes (what eth_sendRawTransaction takes).
    pub bytes: Vec<u8>,
    /// 0x-hex transaction hash.
    pub hash: String,
}

/// Builds and signs `action`.
pub fn build(action: &Action, key: &LocalKey, p: &TxParams) -> Result<Signed, TxError> {
    let (to, value, input) = call_of(action, p)?;
    let mut tx = TxEip1559 {
        chain_id: p.chain_id,
        nonce: p.nonce,
        gas_limit: p.gas_limit,
        max_fee_per_gas: u128::from(p.max_fee_per_gas),
        max_priority_fee_per_gas: u128::from(p.max_priority_fee_per_gas),
        to: TxKind::Call(to),
        value,
        access_list: Default::default(),
        input,
    };
    let sig = key
        .signer()
        .sign_transaction_sync(&mut tx)
        .map_err(|e| TxError::Invalid(format!("signing: {e}")))?;
    let env: TxEnvelope = tx.into_signed(sig).into();
    Ok(Signed {
        bytes: env.encoded_2718(),
        hash: format!("{:#x}", env.tx_hash()),
    })
}

/// What a replacement keeps and what it raises ([`refee`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refeed {
    /// The new version.
    pub signed: Signed,
    /// The nonce both versions hold.
    pub nonce: u64,
}

/// The fees of journaled EIP-1559 bytes: (nonce, max fee, priority fee).
pub fn fees_of(bytes: &[u8]) -> Result<(u64, u128, u128), TxError> {
    use alloy::consensus::Transaction as _;
    use alloy::eips::eip2718::Decodable2718;
    let env = TxEnvelope::decode_2718(&mut &bytes[..])
        .map_err(|e| TxError::Invalid(format!("not a transaction: {e}")))?;
    let TxEnvelope::Eip1559(t) = &env else {
        return Err(TxError::Invalid("not an EIP-1559 transaction".into()));
    };
    Ok((
        env.nonce(),
        t.tx().max_fee_per_gas,
        t.tx().max_priority_fee_per_gas,
    ))
}

/// The same call (nonce, gas limit, recipient, value, input) signed again
/// by `key` with new fees: a replacement the chain can include only
/// instead of the journaled version. Refused unless `key` signed those
/// bytes.
pub fn refee(bytes: &[u8], key: &LocalKey, max_fee: u128, tip: u128) -> Result<Refeed, TxError> {
    use alloy::eips::eip2718::Decodable2718;
    let env = TxEnvelope::decode_2718(&mut &bytes[..])
        .map_err(|e| TxError::Invalid(format!("not a transaction: {e}")))?;
    let TxEnvelope::Eip1559(t) = env else {
        return Err(TxError::Invalid("not an EIP-1559 transaction".into()));
    };
    let from = t
        .signature()
        .recover_address_from_prehash(&t.tx().signature_hash())
        .map_err(|e| TxError::Invalid(format!("signature: {e}")))?;
    if from != key.address() {
        return Err(TxError::Invalid(format!(
            "signed by {from}, not by the custody key"
        )));
    }
    if tip > max_fee {
        return Err(TxError::Invalid(format!(
            "priority fee {tip} above max fee {max_fee}"
        )));
    }
    let mut tx = t.tx().clone();
    tx.max_fee_per_gas = max_fee;
    tx.max_priority_fee_per_gas = tip;
    let nonce = tx.nonce;
    let sig = key
        .signer()
        .sign_transaction_sync(&mut tx)
        .map_err(|e| TxError::Invalid(format!("signing: {e}")))?;
    let env: TxEnvelope = tx.into_signed(sig).into();
    Ok(Refeed {
        signed: Signed {
            bytes: env.encoded_2718(),
            hash: format!("{:#x}", env.tx_hash()),
        },
        nonce,
    })
}

/// Nonce of journaled bytes (for the expiry proof: once the account's
/// nonce is past it and the transaction has no receipt, it can never land).
pub fn decode_nonce(bytes: &[u8]) -> Result<u64, TxError> {
    use alloy::consensus::Transaction as _;
    use alloy::eips::eip2718::Decodable2718;
    let env = TxEnvelope::decode_2718(&mut &bytes[..])
        .map_err(|e| TxError::Invalid(format!("not a transaction: {e}")))?;
    Ok(env.nonce())
}
