//! Messages and SIGN_MODE_DIRECT transactions (cosmrs), pure: no I/O.

use crate::keys::Signer;
use cosmrs::tx::{Body, Fee, Msg, SignDoc, SignerInfo};
use cosmrs::{AccountId, Coin};
use sha2::{Digest, Sha256};
use softstake_core::Amount;
use softstake_core::adapter::OperationKind;

/// One message softstake sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CosmosMsg {
    /// MsgDelegate.
    Delegate {
        /// Validator operator address.
        validator: String,
        /// uatom.
        amount: Amount,
    },
    /// MsgUndelegate.
    Undelegate {
        /// Validator operator address.
        validator: String,
        /// uatom.
        amount: Amount,
    },
    /// MsgBeginRedelegate.
    Redelegate {
        /// Source validator.
        from: String,
        /// Destination validator.
        to: String,
        /// uatom.
        amount: Amount,
    },
    /// MsgWithdrawDelegatorReward.
    WithdrawReward {
        /// Validator operator address.
        validator: String,
    },
    /// MsgSetWithdrawAddress.
    SetWithdrawAddress {
        /// Where rewards go.
        to: String,
    },
}

/// Everything besides the messages that a signature covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxParams {
    /// Chain id (`cosmoshub-4`).
    pub chain_id: String,
    /// From the auth module.
    pub account_number: u64,
    /// From the auth module (tracked between pending transactions).
    pub sequence: u64,
    /// Fee in uatom.
    pub fee_amount: Amount,
    /// Gas limit.
    pub gas_limit: u64,
    /// Memo.
    pub memo: String,
    /// Last height the transaction may be included at (0: none).
    pub timeout_height: u64,
}

/// A signed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTx {
    /// TxRaw bytes.
    pub bytes: Vec<u8>,
    /// Upper-case hex SHA-256 of the bytes (CometBFT's tx hash).
    pub hash: String,
}

/// Errors building a transaction. Nothing was signed or sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TxError {
    /// A malformed or wrong-prefix address.
    #[error("{field}: {value:?} is not a valid {expected} address")]
    Address {
        /// Which field.
        field: &'static str,
        /// The value.
        value: String,
        /// Expected bech32 prefix.
        expected: &'static str,
    },
    /// An operation the Hub adapter cannot express.
    #[error("{0}")]
    Unsupported(String),
    /// Encoding or signing failed.
    #[error("building the transaction failed: {0}")]
    Build(String),
}

fn addr(field: &'static str, v: &str, prefix: &'static str) -> Result<AccountId, TxError> {
    let bad = || TxError::Address {
        field,
        value: v.to_owned(),
        expected: prefix,
    };
    let id: AccountId = v.parse().map_err(|_| bad())?;
    if id.prefix() != prefix {
        return Err(bad());
    }
    Ok(id)
}

/// Checks a validator operator address.
pub fn check_valoper(v: &str) -> Result<(), TxError> {
    addr("validator", v, crate::VALOPER_PREFIX).map(|_| ())
}

/// Checks an account address.
pub fn check_account(v: &str) -> Result<(), TxError> {
    addr("address", v, crate::ACCOUNT_PREFIX).map(|_| ())
}

fn coin(a: Amount) -> Result<Coin, TxError> {
    Ok(Coin {
        denom: crate::DENOM
            .parse()
            .map_err(|e| TxError::Build(format!("{e}")))?,
        amount: a.base(),
    })
}

/// The messages for an operation. `ClaimRewards` with no validators claims
/// from every validator in `delegated`. Setup steps: `set_withdraw_address:ADDR`.
pub fn msgs_for(kind: &OperationKind, delegated: &[String]) -> Result<Vec<CosmosMsg>, TxError> {
    let positive = |a: &Amount| {
        if a.is_zero() {
            Err(TxError::Unsupported("amount must be greater than 0".into()))
        } else {
            Ok(())
        }
    };
    Ok(match kind {
        OperationKind::Delegate { validator, amount } => {
            positive(amount)?;
            vec![CosmosMsg::Delegate {
                validator: validator.clone(),
                amount: *amount,
            }]
        }
        OperationKind::Undelegate { validator, amount } => {
            positive(amount)?;
            vec![CosmosMsg::Undelegate {
                validator: validator.clone(),
                amount: *amount,
            }]
        }
        OperationKind::Redelegate { from, to, amount } => {
            positive(amount)?;
            vec![CosmosMsg::Redelegate {
                from: from.clone(),
                to: to.clone(),
                amount: *amount,
            }]
        }
        OperationKind::ClaimRewards { validators } => {
            let vs = if validators.is_empty() {
                delegated
            } else {
                validators.as_slice()
            };
            if vs.is_empty() {
                return Err(TxError::Unsupported(
                    "no delegations to claim rewards from".into(),
                ));
            }
            vs.iter()
                .map(|v| CosmosMsg::WithdrawReward {
                    validator: v.clone(),
                })
                .collect()
        }
        OperationKind::Setup { step } => match step.split_once(':') {
            Some(("set_withdraw_address", to)) => {
                vec![CosmosMsg::SetWithdrawAddress { to: to.to_owned() }]
            }
            _ => {
                return Err(TxError::Unsupported(format!(
                    "unknown Cosmos setup step {step:?} (known: set_withdraw_address:ADDR)"
                )));
            }
        },
        OperationKind::WithdrawUnbonded { .. } => {
            return Err(TxError::Unsupported(
                "the Hub returns matured unbonding to the balance by itself; there is nothing to withdraw".into(),
            ));
        }
    })
}

/// What a signed transaction commits to that a replacement must keep or
/// raise ([`decode_signed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedParts {
    /// The signer's account sequence.
    pub sequence: u64,
    /// The fee in uatom.
    pub fee: u128,
    /// The messages, as (type URL, encoded value).
    pub messages: Vec<(String, Vec<u8>)>,
}

/// Decodes TxRaw bytes into the parts a replacement is checked against:
/// exactly one signer, a fee in uatom only.
pub fn decode_signed(tx_bytes: &[u8]) -> Result<SignedParts, TxError> {
    use cosmrs::proto::cosmos::tx::v1beta1 as t;
    use cosmrs::proto::prost::Message;
    let bad = |what: &str| TxError::Build(format!("signed transaction: {what}"));
    let raw = t::TxRaw::decode(tx_bytes).map_err(|e| bad(&e.to_string()))?;
    let body = t::TxBody::decode(raw.body_bytes.as_slice()).map_err(|e| bad(&e.to_string()))?;
    let auth =
        t::AuthInfo::decode(raw.auth_info_bytes.as_slice()).map_err(|e| bad(&e.to_string()))?;
    let [signer] = auth.signer_infos.as_slice() else {
        return Err(bad("not exactly one signer"));
    };
    let mut fee = 0u128;
    for c in auth.fee.map(|f| f.amount).unwrap_or_default() {
        if c.denom != crate::DENOM {
            return Err(bad(&format!("a fee in {}", c.denom)));
        }
        let n: u128 = c.amount.parse().map_err(|_| bad("fee amount"))?;
        fee = fee.checked_add(n).ok_or_else(|| bad("fee overflows"))?;
    }
    Ok(SignedParts {
        sequence: signer.sequence,
        fee,
        messages: body
            .messages
            .into_iter()
            .map(|m| (m.type_url, m.value))
            .collect(),
    })
}

/// The operation a transaction performs, when it is one softstake signs
/// for `delegator` (the inverse of [`msgs_for`]): one delegate, undelegate
/// or redelegate, reward claims, or the withdraw-address setup. `None` for
/// anything else (a bank send, another delegator, bytes that do not
/// decode).
pub fn operation_of(tx_bytes: &[u8], delegator: &str) -> Option<OperationKind> {
    use cosmrs::proto::cosmos::{
        distribution::v1beta1 as d, staking::v1beta1 as st, tx::v1beta1 as t,
    };
    use cosmrs::proto::prost::Message;
    let raw = t::TxRaw::decode(tx_bytes).ok()?;
    let body = t::TxBody::decode(raw.body_bytes.as_slice()).ok()?;
    let amount = |c: Option<cosmrs::proto::cosmos::base::v1beta1::Coin>| -> Option<Amount> {
        let c = c?;
        (c.denom == crate::DENOM).then_some(())?;
        c.amount.parse().ok().map(Amount::from_base)
    };
    let mut claims = Vec::new();
    let mut single = None;
    for m in &body.messages {
        let v = m.value.as_slice();
        let kind = match m.type_url.as_str() {
            "/cosmos.staking.v1beta1.MsgDelegate" => {
                let x = st::MsgDelegate::decode(v).ok()?;
                (x.delegator_address == delegator).then_some(())?;
                OperationKind::Delegate {
                    validator: x.validator_address,
                    amount: amount(x.amount)?,
                }
            }
            "/cosmos.staking.v1beta1.MsgUndelegate" => {
                let x = st::MsgUndelegate::decode(v).ok()?;
                (x.delegator_address == delegator).then_some(())?;
                OperationKind::Undelegate {
                    validator: x.validator_address,
                    amount: amount(x.amount)?,
                }
            }
            "/cosmos.staking.v1beta1.MsgBeginRedelegate" => {
                let x = st::MsgBeginRedelegate::decode(v).ok()?;
                (x.delegator_address == delegator).then_some(())?;
                OperationKind::Redelegate {
                    from: x.validator_src_address,
                    to: x.validator_dst_address,
                    amount: amount(x.amount)?,
                }
            }
            "/cosmos.distribution.v1beta1.MsgWithdrawDelegatorReward" => {
                let x = d::MsgWithdrawDelegatorReward::decode(v).ok()?;
                (x.delegator_address == delegator).then_some(())?;
                claims.push(x.validator_address);
                continue;
            }
            "/cosmos.distribution.v1beta1.MsgSetWithdrawAddress" => {
                let x = d::MsgSetWithdrawAddress::decode(v).ok()?;
                (x.delegator_address == delegator).then_some(())?;
                OperationKind::Setup {
                    step: format!("set_withdraw_address:{}", x.withdraw_address),
                }
            }
            _ => return None,
        };
        if single.replace(kind).is_some() {
            return None;
        }
    }
    match (single, claims.is_empty()) {
        (Some(k), true) => Some(k),
        (None, false) => Some(OperationKind::ClaimRewards { validators: claims }),
        _ => None,
    }
}

fn to_any(m: &CosmosMsg, delegator: &AccountId) -> Result<cosmrs::Any, TxError> {
    use cosmrs::distribution::{MsgSetWithdrawAddress, MsgWithdrawDelegatorReward};
    use cosmrs::staking::{MsgBeginRedelegate, MsgDelegate, MsgUndelegate};
    let v = |x: &str| addr("validator", x, crate::VALOPER_PREFIX);
    let r = match m {
        CosmosMsg::Delegate { validator, amount } => MsgDelegate {
            delegator_address: delegator.clone(),
            validator_address: v(validator)?,
            amount: coin(*amount)?,
        }
        .to_any(),
        CosmosMsg::Undelegate { validator, amount } => MsgUndelegate {
            delegator_address: delegator.clone(),
            validator_address: v(validator)?,
            amount: coin(*amount)?,
        }
        .to_any(),
        CosmosMsg::Redelegate { from, to, amount } => MsgBeginRedelegate {
            delegator_address: delegator.clone(),
            validator_src_address: v(from)?,
            validator_dst_address: v(to)?,
            amount: coin(*amount)?,
        }
        .to_any(),
        CosmosMsg::WithdrawReward { validator } => MsgWithdrawDelegatorReward {
            delegator_address: delegator.clone(),
            validator_address: v(validator)?,
        }
        .to_any(),
        CosmosMsg::SetWithdrawAddress { to } => MsgSetWithdrawAddress {
            delegator_address: delegator.clone(),
            withdraw_address: addr("withdraw address", to, crate::ACCOUNT_PREFIX)?,
        }
        .to_any(),
    };
    r.map_err(|e| TxError::Build(e.to_string()))
}

/// Builds and signs a transaction (SIGN_MODE_DIRECT, one signer).
pub fn sign_tx(signer: &dyn Signer, p: &TxParams, msgs: &[CosmosMsg]) -> Result<SignedTx, TxError> {
    if msgs.is_empty() {
        return Err(TxError::Unsupported("a transaction needs a message".into()));
    }
    let delegator = addr("delegator", &signer.address(), crate::ACCOUNT_PREFIX)?;
    let anys = msgs
        .iter()
        .map(|m| to_any(m, &delegator))
        .collect::<Result<Vec<_>, _>>()?;
    let height = u32::try_from(p.timeout_height)
        .map_err(|_| TxError::Build("timeout height too large".into()))?;
    let body = Body::new(anys, p.memo.clone(), height);
    let fee = Fee::from_amount_and_gas(coin(p.fee_amount)?, p.gas_limit);
    let auth = SignerInfo::single_direct(Some(signer.public_key()), p.sequence).auth_info(fee);
    let chain_id: cosmrs::tendermint::chain::Id = p
        .chain_id
        .parse()
        .map_err(|e| TxError::Build(format!("chain id: {e}")))?;
    let doc = SignDoc::new(&body, &auth, &chain_id, p.account_number)
        .map_err(|e| TxError::Build(e.to_string()))?;
    let raw_doc = cosmrs::proto::cosmos::tx::v1beta1::TxRaw {
        body_bytes: doc.body_bytes.clone(),
        auth_info_bytes: doc.auth_info_bytes.clone(),
        signatures: vec![],
    };
    let sign_bytes = doc
        .into_bytes()
        .map_err(|e| TxError::Build(e.to_string()))?;
    let sig = signer.sign(&sign_bytes).map_err(TxError::Build)?;
    let raw = cosmrs::proto::cosmos::tx::v1beta1::TxRaw {
        signatures: vec![sig],
        ..raw_doc
    };
    let bytes = cosmrs::proto::traits::Message::encode_to_vec(&raw);
    Ok(SignedTx {
        hash: tx_hash(&bytes),
        bytes,
    })
}

/// CometBFT's transaction hash: upper-case hex SHA-256.
pub fn tx_hash(bytes: &[u8]) -> String {
    hex::encode_upper(Sha256::digest(bytes))
}
