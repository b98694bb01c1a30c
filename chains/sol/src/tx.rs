//! Solana transactions for every stake operation, built from explicit
//! [`Action`]s. Pure: same action, parameters and key, same bytes (ed25519
//! is deterministic). Byte for byte equal to @solana/web3.js's
//! (tests/vectors/sol).
//!
//! Stake accounts are derived with `createAccountWithSeed` from the custody
//! key and the seed `softstake-<n>` ([`seed_for`]), so they are found again
//! after a restart without extra storage.

use crate::keys::LocalKey;
use serde::{Deserialize, Serialize};
use solana_sdk::hash::Hash;
use solana_sdk::instruction::Instruction;
use solana_sdk::message::Message;
use solana_sdk::message::compiled_instruction::CompiledInstruction;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::transaction::Transaction;
use solana_stake_interface::instruction as stake_ix;
use solana_stake_interface::state::{Authorized, Lockup, StakeStateV2};
use solana_system_interface::instruction as system_ix;
use std::str::FromStr;

/// The stake program.
pub const STAKE_PROGRAM: Pubkey = solana_stake_interface::program::ID;
/// The compute budget program.
pub const COMPUTE_BUDGET_PROGRAM: Pubkey =
    solana_sdk::pubkey!("ComputeBudget111111111111111111111111111111");
/// Size of a stake account.
pub const STAKE_ACCOUNT_SIZE: u64 = StakeStateV2::size_of() as u64;
/// Most withdraw instructions in one transaction (fits the 1,232-byte limit).
pub const MAX_WITHDRAWS_PER_TX: usize = 8;
/// Prefix of every seed softstake derives stake accounts with.
pub const SEED_PREFIX: &str = "softstake-";

/// The seed of stake account number `index`.
pub fn seed_for(index: u32) -> String {
    format!("{SEED_PREFIX}{index}")
}

/// The address of stake account number `index` of `base`.
pub fn stake_address(base: &Pubkey, index: u32) -> Pubkey {
    // Only fails for seeds over 32 bytes or a program id ending in the PDA
    // marker; neither can happen for this prefix and the stake program.
    Pubkey::create_with_seed(base, &seed_for(index), &STAKE_PROGRAM).unwrap_or_default()
}

/// One operation, fully specified: what the transaction does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Create stake account `seed_index`, fund it with `stake_lamports` plus
    /// the rent-exempt reserve, initialize it (staker and withdrawer
    /// authorities) and delegate it to `vote`.
    CreateAndDelegate {
        /// Seed index of the new account.
        seed_index: u32,
        /// Vote account.
        vote: String,
        /// Lamports to stake (above the reserve).
        stake_lamports: u64,
    },
    /// Split `lamports` of `source` into new account `seed_index` (prefunded
    /// with the rent-exempt reserve) and deactivate the new account.
    SplitAndDeactivate {
        /// Account to split.
        source: String,
        /// Seed index of the new account.
        seed_index: u32,
        /// Stake to split off.
        lamports: u64,
    },
    /// Deactivate a whole stake account.
    Deactivate {
        /// Account.
        account: String,
    },
    /// Withdraw lamports from inactive stake accounts to the custody account.
    Withdraw {
        /// (account, lamports) pairs, at most [`MAX_WITHDRAWS_PER_TX`].
        accounts: Vec<WithdrawEntry>,
    },
    /// Merge `source` into `destination` (both active on the same vote
    /// account, or both inactive).
    Merge {
        /// Account that remains.
        destination: String,
        /// Account that is drained and closed.
        source: String,
    },
    /// Delegate an initialized or fully inactive account to `vote`
    /// (re-delegation after a deactivation has cooled down).
    Delegate {
        /// Account.
        account: String,
        /// Vote account.
        vote: String,
    },
}

/// One withdrawal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithdrawEntry {
    /// Stake account.
    pub account: String,
    /// Lamports to withdraw (all of them closes the account).
    pub lamports: u64,
}

/// Everything a transaction needs besides the action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxParams {
    /// Recent blockhash (base58).
    pub blockhash: String,
    /// Rent-exempt reserve of a stake account, lamports.
    pub rent_exempt_reserve: u64,
    /// Priority fee in micro-lamports per compute unit (0: none, and no
    /// compute-budget instructions).
    #[serde(default)]
    pub compute_unit_price: u64,
    /// Compute unit limit set with the priority fee.
    #[serde(default = "default_cu_limit")]
    pub compute_unit_limit: u32,
    /// Withdraw authority when it is not the custody key (then withdrawals
    /// cannot be signed here).
    #[serde(default)]
    pub withdrawer: Option<String>,
}

fn default_cu_limit() -> u32 {
    200_000
}

/// Why a transaction could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// Not a base58 public key.
    #[error("{what} {value:?} is not a Solana address")]
    BadAddress {
        /// Which field.
        what: &'static str,
        /// Value.
        value: String,
    },
    /// Not a base58 blockhash.
    #[error("blockhash {0:?} is not a base58 hash")]
    BadBlockhash(String),
    /// The action is not acceptable as given.
    #[error("{0}")]
    Invalid(String),
}

/// Parses a base58 address.
pub fn parse_address(what: &'static str, value: &str) -> Result<Pubkey, TxError> {
    Pubkey::from_str(value).map_err(|_| TxError::BadAddress {
        what,
        value: value.to_owned(),
    })
}

fn compute_budget(params: &TxParams) -> Vec<Instruction> {
    if params.compute_unit_price == 0 {
        return Vec::new();
    }
    let mut limit = vec![2u8];
    limit.extend_from_slice(&params.compute_unit_limit.to_le_bytes());
    let mut price = vec![3u8];
    price.extend_from_slice(&params.compute_unit_price.to_le_bytes());
    vec![
        Instruction::new_with_bytes(COMPUTE_BUDGET_PROGRAM, &limit, vec![]),
        Instruction::new_with_bytes(COMPUTE_BUDGET_PROGRAM, &price, vec![]),
    ]
}

/// The instructions of `action` for custody key `custody` (fee payer,
/// staker and, unless `params.withdrawer` says otherwise, withdrawer).
pub fn instructions(
    action: &Action,
    custody: &Pubkey,
    params: &TxParams,
) -> Result<Vec<Instruction>, TxError> {
    let withdrawer = match &params.withdrawer {
        Some(w) => parse_address("withdrawer", w)?,
        None => *custody,
    };
    let mut ixs = compute_budget(params);
    match action {
        Action::CreateAndDelegate {
            seed_index,
            vote,
            stake_lamports,
        } => {
            let vote = parse_address("vote account", vote)?;
            let stake = stake_address(custody, *seed_index);
            let lamports = stake_lamports
                .checked_add(params.rent_exempt_reserve)
                .ok_or_else(|| TxError::Invalid("stake amount overflows".into()))?;
            ixs.extend(stake_ix::create_account_with_seed_and_delegate_stake(
                custody,
                &stake,
                custody,
                &seed_for(*seed_index),
                &vote,
                &Authorized {
                    staker: *custody,
                    withdrawer,
                },
                &Lockup::default(),
                lamports,
            ));
        }
        Action::SplitAndDeactivate {
            source,
            seed_index,
            lamports,
        } => {
            let source = parse_address("source stake account", source)?;
            let split = stake_address(custody, *seed_index);
            // Same order as web3.js' StakeProgram.splitWithSeed with a rent
            // reserve: allocate, prefund the reserve, split.
            ixs.push(system_ix::allocate_with_seed(
                &split,
                custody,
                &seed_for(*seed_index),
                STAKE_ACCOUNT_SIZE,
                &STAKE_PROGRAM,
            ));
            ixs.push(system_ix::transfer(
                custody,
                &split,
                params.rent_exempt_reserve,
            ));
            let mut split_ixs = stake_ix::split_with_seed(
                &source,
                custody,
                *lamports,
                &split,
                custody,
                &seed_for(*seed_index),
            );
            // split_with_seed = [allocate_with_seed, split]; keep the split.
            let split_only = split_ixs
                .pop()
                .ok_or_else(|| TxError::Invalid("no split instruction".into()))?;
            ixs.push(split_only);
            ixs.push(stake_ix::deactivate_stake(&split, custody));
        }
        Action::Deactivate { account } => {
            let account = parse_address("stake account", account)?;
            ixs.push(stake_ix::deactivate_stake(&account, custody));
        }
        Action::Withdraw { accounts } => {
            if accounts.is_empty() || accounts.len() > MAX_WITHDRAWS_PER_TX {
                return Err(TxError::Invalid(format!(
                    "a withdrawal takes 1 to {MAX_WITHDRAWS_PER_TX} accounts, not {}",
                    accounts.len()
                )));
            }
            if withdrawer != *custody {
                return Err(TxError::Invalid(format!(
                    "the withdraw authority {withdrawer} is not the custody key {custody}; \
                     withdraw with the withdraw authority's own key"
                )));
            }
            for w in accounts {
                let account = parse_address("stake account", &w.account)?;
                ixs.push(stake_ix::withdraw(
                    &account, custody, custody, w.lamports, None,
                ));
            }
        }
        Action::Merge {
            destination,
            source,
        } => {
            let d = parse_address("destination stake account", destination)?;
            let s = parse_address("source stake account", source)?;
            if d == s {
                return Err(TxError::Invalid(
                    "cannot merge an account into itself".into(),
                ));
            }
            ixs.extend(stake_ix::merge(&d, &s, custody));
        }
        Action::Delegate { account, vote } => {
            let account = parse_address("stake account", account)?;
            let vote = parse_address("vote account", vote)?;
            ixs.push(stake_ix::delegate_stake(&account, custody, &vote));
        }
    }
    Ok(ixs)
}

/// A signed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// Wire bytes (what `sendTransaction` takes, base64-encoded).
    pub bytes: Vec<u8>,
    /// First signature, base58: the transaction id.
    pub signature: String,
}

/// Builds and signs `action`.
pub fn build(action: &Action, key: &LocalKey, params: &TxParams) -> Result<Signed, TxError> {
    let ixs = instructions(action, &key.pubkey(), params)?;
    sign(&ixs, key, &params.blockhash)
}

/// A plain system transfer of `lamports` from the custody `key` to `to`,
/// signed: not a staking action (the devnet repays the treasury with it).
pub fn transfer(
    key: &LocalKey,
    to: &Pubkey,
    lamports: u64,
    blockhash: &str,
) -> Result<Signed, TxError> {
    sign(
        &[system_ix::transfer(&key.pubkey(), to, lamports)],
        key,
        blockhash,
    )
}

/// `ixs` in a legacy message paid and signed by `key`.
fn sign(ixs: &[Instruction], key: &LocalKey, blockhash: &str) -> Result<Signed, TxError> {
    let blockhash =
        Hash::from_str(blockhash).map_err(|_| TxError::BadBlockhash(blockhash.to_owned()))?;
    let message = compile(ixs, &key.pubkey(), blockhash)?;
    let mut tx = Transaction::new_unsigned(message);
    tx.try_sign(&[key.keypair()], blockhash)
        .map_err(|e| TxError::Invalid(format!("signing: {e}")))?;
    let bytes = bincode::serialize(&tx).map_err(|e| TxError::Invalid(e.to_string()))?;
    Ok(Signed {
        bytes,
        signature: tx.signatures[0].to_string(),
    })
}

/// Compiles a legacy message with the account order the JavaScript SDKs
/// use (web3.js 1.x and @solana/kit): fee payer first, then signers
/// before non-signers and writable before read-only, and within each group
/// by address in `Intl.Collator("en", {caseFirst: "lower"})` order. The
/// Rust SDK orders by raw key bytes instead; both are valid transactions,
/// and this order makes softstake's bytes comparable with the JavaScript
/// SDK's, which the reference vectors check.
pub fn compile(ixs: &[Instruction], payer: &Pubkey, blockhash: Hash) -> Result<Message, TxError> {
    // (key, signer, writable), first appearance kept, flags upgraded.
    let mut metas: Vec<(Pubkey, bool, bool)> = Vec::new();
    let mut add = |k: Pubkey, signer: bool, writable: bool| {
        if let Some(m) = metas.iter_mut().find(|m| m.0 == k) {
            m.1 |= signer;
            m.2 |= writable;
        } else {
            metas.push((k, signer, writable));
        }
    };
    for ix in ixs {
        for a in &ix.accounts {
            add(a.pubkey, a.is_signer, a.is_writable);
        }
    }
    for ix in ixs {
        add(ix.program_id, false, false);
    }
    metas.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then(b.2.cmp(&a.2))
            .then_with(|| collate(&a.0.to_string(), &b.0.to_string()))
    });
    metas.retain(|m| m.0 != *payer);
    metas.insert(0, (*payer, true, true));
    let count = |f: &dyn Fn(&(Pubkey, bool, bool)) -> bool| {
        u8::try_from(metas.iter().filter(|m| f(m)).count())
            .map_err(|_| TxError::Invalid("too many accounts for one transaction".into()))
    };
    let signers = count(&|m| m.1)?;
    let readonly_signed = count(&|m| m.1 && !m.2)?;
    let readonly_unsigned = count(&|m| !m.1 && !m.2)?;
    let keys: Vec<Pubkey> = metas.iter().map(|m| m.0).collect();
    let index = |k: &Pubkey| {
        keys.iter()
            .position(|x| x == k)
            .and_then(|i| u8::try_from(i).ok())
            .ok_or_else(|| TxError::Invalid("account index out of range".into()))
    };
    let mut compiled = Vec::with_capacity(ixs.len());
    for ix in ixs {
        compiled.push(CompiledInstruction {
            program_id_index: index(&ix.program_id)?,
            accounts: ix
                .accounts
                .iter()
                .map(|a| index(&a.pubkey))
                .collect::<Result<_, _>>()?,
            data: ix.data.clone(),
        });
    }
    Ok(Message::new_with_compiled_instructions(
        signers,
        readonly_signed,
        readonly_unsigned,
        keys,
        blockhash,
        compiled,
    ))
}

/// ICU "en" collation with lower case first, for base58 strings (digits
/// and ASCII letters only): letters compare case-insensitively after
/// digits; only if the whole strings tie that way does the first case
/// difference decide, lower case first.
fn collate(a: &str, b: &str) -> std::cmp::Ordering {
    let primary = |s: &str| s.to_ascii_lowercase().into_bytes();
    let tertiary = |s: &str| {
        s.bytes()
            .map(|c| c.is_ascii_uppercase())
            .collect::<Vec<bool>>()
    };
    primary(a)
        .cmp(&primary(b))
        .then_with(|| tertiary(a).cmp(&tertiary(b)))
}

/// What the chain needs to know about journaled bytes: the signature and
/// the blockhash they are bound to (for the expiry proof).
pub fn decode(bytes: &[u8]) -> Result<(String, String), TxError> {
    let tx: Transaction = bincode::deserialize(bytes)
        .map_err(|e| TxError::Invalid(format!("not a transaction: {e}")))?;
    let sig = tx
        .signatures
        .first()
        .ok_or_else(|| TxError::Invalid("transaction has no signature".into()))?;
    Ok((sig.to_string(), tx.message.recent_blockhash.to_string()))
}

/// The accounts a signed transaction write-locks (base58), from its
/// message header: the writable signers, then the writable non-signers.
pub fn writable_accounts(bytes: &[u8]) -> Result<Vec<String>, TxError> {
    let tx: Transaction = bincode::deserialize(bytes)
        .map_err(|e| TxError::Invalid(format!("not a transaction: {e}")))?;
    let h = &tx.message.header;
    let keys = &tx.message.account_keys;
    let signed = usize::from(h.num_required_signatures);
    let ro_signed = usize::from(h.num_readonly_signed_accounts);
    let ro_unsigned = usize::from(h.num_readonly_unsigned_accounts);
    Ok(keys
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            if *i < signed {
                *i < signed.saturating_sub(ro_signed)
            } else {
                *i < keys.len().saturating_sub(ro_unsigned)
            }
        })
        .map(|(_, k)| k.to_string())
        .collect())
}

/// A signed transaction's compute budget: (SetComputeUnitLimit,
/// SetComputeUnitPrice), `None` for an instruction it does not carry.
pub fn compute_budget_of(bytes: &[u8]) -> Result<(Option<u32>, Option<u64>), TxError> {
    let tx: Transaction = bincode::deserialize(bytes)
        .map_err(|e| TxError::Invalid(format!("not a transaction: {e}")))?;
    let (mut limit, mut price) = (None, None);
    for ix in &tx.message.instructions {
        if tx
            .message
            .account_keys
            .get(usize::from(ix.program_id_index))
            != Some(&COMPUTE_BUDGET_PROGRAM)
        {
            continue;
        }
        match ix.data.split_first() {
            Some((2, rest)) => limit = rest.try_into().ok().map(u32::from_le_bytes),
            Some((3, rest)) => price = rest.try_into().ok().map(u64::from_le_bytes),
            _ => {}
        }
    }
    Ok((limit, price))
}

/// Whether `key` signed `bytes` correctly (used by tests and `tx sign`
/// output checks).
pub fn verify(bytes: &[u8]) -> bool {
    bincode::deserialize::<Transaction>(bytes).is_ok_and(|tx| tx.verify().is_ok())
}
