//! An independent ledger for the Cardano tests: every transaction the test
//! node was sent, with its verdict, is replayed on `@blaze-cardano/emulator`
//! (the Blaze SDK's Conway ledger emulator, npm, pinned by
//! `chains/ada/ledger/package-lock.json`, installed by `scripts/ada-ledger`;
//! `chains/ada/ledger/replay.mjs` drives it). The two ledgers must give the
//! same verdict on every transaction and end with the same unspent outputs,
//! the same registered stake keys, pools and deposits.
//!
//! What the emulator does not check, and so stays the test node's word
//! alone ([`UNCHECKED`]): that a registration's deposit is the protocol's,
//! that a pool is registered before delegation to it, that a withdrawal's
//! stake key has delegated its vote (Conway after bootstrap), and that a
//! deregistered key's reward balance is zero. The emulator pays
//! no rewards: the node's reward balances are set on it before each
//! transaction, as the chain's reward calculation would have left them.

use crate::testnode::{Submission, TestNode};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The ledger rules the test node enforces and the emulator does not (its
/// certificate deposit is taken from the certificate, delegation does not
/// look the pool up, withdrawals need no DRep, deregistration does not look
/// at the reward balance): a transaction the node refused under one of
/// them is not replayed, since the emulator would take it.
pub const UNCHECKED: [&str; 4] = [
    "IncorrectDepositDELEG",
    "StakePoolNotRegisteredOnKeyPOOL",
    "ConwayWdrlNotDelegatedToDRep",
    "StakeKeyNonZeroAccountBalanceDELEG",
];

/// The emulator's one known defect on softstake's transactions: a
/// transaction that withdraws a stake key's whole reward balance and
/// deregisters it is valid in Conway (withdrawals are processed before
/// certificates: the formal ledger specification's PRE-CERT rule, and
/// cardano-ledger's conformance case `pass-deleg-deregistering-returns-the-deposit`);
/// `@blaze-cardano/emulator` 0.4.5 validates it, then applies the
/// deregistration first and throws when it debits the withdrawal.
pub const WITHDRAW_THEN_DEREGISTER: &str = "withdrawal and deregistration of one key: \
     the emulator applies the certificate before the withdrawal (Conway applies the withdrawal first)";

/// Whether a transaction both withdraws rewards and deregisters a stake key.
fn withdraws_and_deregisters(bytes: &[u8]) -> bool {
    use pallas_primitives::conway::{Certificate, Tx};
    let Ok(tx) = pallas_codec::minicbor::decode::<Tx>(bytes) else {
        return false;
    };
    let b = &tx.transaction_body;
    b.withdrawals.as_ref().is_some_and(|w| !w.is_empty())
        && b.certificates.iter().flat_map(|c| c.iter()).any(|c| {
            matches!(
                c,
                Certificate::UnReg(..) | Certificate::StakeDeregistration(..)
            )
        })
}

/// Where the emulator and its driver live.
pub fn ledger_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ledger")
}

/// What the emulator made of the node's history.
#[derive(Debug, Clone)]
pub struct Replay {
    /// Transactions on which the emulator is known to be wrong
    /// ([`WITHDRAW_THEN_DEREGISTER`]), taken as the node's verdict.
    pub defects: Vec<String>,
    /// Transactions the node refused under a rule the emulator does not
    /// check ([`UNCHECKED`]): left out of the replay, by rule.
    pub unchecked: Vec<String>,
    /// Per transaction, in order: the node's verdict and the emulator's
    /// (`Err` carries each side's reason).
    pub verdicts: Vec<(Result<String, String>, Result<String, String>)>,
    /// The emulator's unspent outputs: (tx id hex, index, address bytes,
    /// lovelace), ordered.
    pub utxos: Vec<(String, u64, Vec<u8>, u64)>,
    /// Registered stake keys: key hash -> pool id hex.
    pub pools: BTreeMap<[u8; 28], Option<String>>,
    /// Deposits the emulator holds.
    pub deposits: u64,
}

/// Replays `node`'s submissions on the emulator.
pub fn replay(
    node: &TestNode,
    min_fee_a: u64,
    min_fee_b: u64,
    key_deposit: u64,
) -> Result<Replay, String> {
    let script = ledger_dir().join("replay.mjs");
    if !ledger_dir()
        .join("node_modules/@blaze-cardano/emulator")
        .exists()
    {
        return Err(format!(
            "the Cardano ledger emulator is not installed in {}: run scripts/ada-ledger",
            ledger_dir().display()
        ));
    }
    let subs = node.submissions()?;
    let mut unchecked = Vec::new();
    let mut steps = Vec::new();
    let mut node_verdicts = Vec::new();
    for s in &subs {
        match s {
            Submission::Faucet {
                tx_hash,
                address,
                lovelace,
            } => steps.push(json!({"utxo": {
                "tx_hash": tx_hash, "index": 0,
                "address": hex::encode(address), "lovelace": lovelace.to_string()}})),
            Submission::Tx {
                slot,
                bytes,
                verdict,
                rewards,
            } => {
                if let Err(e) = verdict
                    && let Some(rule) = UNCHECKED.iter().find(|r| e.starts_with(**r))
                {
                    unchecked.push((*rule).to_owned());
                    continue;
                }
                // The slot it lands in: the block after the tip it met.
                steps.push(json!({"slot": slot + 1}));
                for (account, lovelace) in rewards {
                    steps.push(json!({"rewards": {
                        "account": hex::encode(account), "lovelace": lovelace.to_string()}}));
                }
                steps.push(json!({"tx": hex::encode(bytes)}));
                node_verdicts.push((verdict.clone(), withdraws_and_deregisters(bytes)));
            }
        }
    }
    let last = subs
        .iter()
        .filter_map(|s| match s {
            Submission::Tx { slot, .. } => Some(*slot),
            Submission::Faucet { .. } => None,
        })
        .max()
        .unwrap_or(0);
    steps.push(json!({"slot": last + 2}));
    let input = json!({
        "params": {"min_fee_a": min_fee_a, "min_fee_b": min_fee_b, "key_deposit": key_deposit},
        "steps": steps,
    });
    if let Some(path) = std::env::var_os("SOFTSTAKE_ADA_LEDGER_DUMP") {
        // For a look by hand: `node chains/ada/ledger/replay.mjs < $path`.
        std::fs::write(&path, input.to_string()).map_err(|e| format!("dump: {e}"))?;
    }
    let mut child = std::process::Command::new("node")
        .arg(&script)
        .current_dir(ledger_dir())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("node {}: {e}", script.display()))?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        stdin
            .write_all(input.to_string().as_bytes())
            .map_err(|e| format!("writing to the emulator: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("the emulator: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the emulator failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("the emulator's answer: {e}"))?;
    let results = v["results"].as_array().ok_or("no results")?;
    // Reward balances set on a key the emulator does not know are a
    // disagreement too (the node has it registered).
    if let Some(r) = results.iter().find(|r| {
        r["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("rewards "))
    }) {
        return Err(format!("the ledgers disagree on registration: {r}"));
    }
    if results.len() != node_verdicts.len() {
        return Err(format!(
            "{} transactions sent, {} verdicts",
            node_verdicts.len(),
            results.len()
        ));
    }
    let mut defects = Vec::new();
    let verdicts = node_verdicts
        .into_iter()
        .zip(results)
        .map(|((n, both), r)| {
            let e = if r["ok"].as_bool() == Some(true) {
                Ok(r["id"].as_str().unwrap_or("").to_owned())
            } else {
                Err(r["error"].as_str().unwrap_or("").to_owned())
            };
            // The emulator validates a withdrawal-and-deregistration as
            // Conway does, then applies the certificate before the
            // withdrawal and throws on the account it just removed; what it
            // validated and applied (outputs, deregistration, refund)
            // stands, as the final state comparison checks.
            match (&n, &e) {
                (Ok(id), Err(why)) if both && why.contains("is not registered") => {
                    defects.push(format!("{id}: {WITHDRAW_THEN_DEREGISTER}"));
                    (n.clone(), Ok(id.clone()))
                }
                _ => (n, e),
            }
        })
        .collect();
    let num = |x: &Value| -> Result<u64, String> {
        x.as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("not a lovelace amount: {x}"))
    };
    let mut utxos = Vec::new();
    for u in v["utxos"].as_array().ok_or("no utxos")? {
        utxos.push((
            u["tx_hash"].as_str().unwrap_or("").to_owned(),
            u["index"].as_u64().ok_or("utxo index")?,
            hex::decode(u["address"].as_str().unwrap_or("")).map_err(|e| e.to_string())?,
            num(&u["lovelace"])?,
        ));
    }
    utxos.sort();
    let mut pools = BTreeMap::new();
    for (addr, a) in v["accounts"].as_object().ok_or("no accounts")? {
        let bytes = hex::decode(addr).map_err(|e| e.to_string())?;
        let key: [u8; 28] = bytes
            .get(1..29)
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| format!("reward address {addr}"))?;
        pools.insert(key, a["pool"].as_str().map(str::to_owned));
    }
    Ok(Replay {
        defects,
        unchecked,
        verdicts,
        utxos,
        pools,
        deposits: num(&v["deposits"])?,
    })
}

/// Replays `node`'s history on the emulator and fails, naming the first
/// difference, unless both ledgers agree on every verdict and on the
/// state they end in.
pub fn assert_agrees(node: &TestNode, min_fee_a: u64, min_fee_b: u64, key_deposit: u64) {
    let r = match replay(node, min_fee_a, min_fee_b, key_deposit) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert!(!r.verdicts.is_empty(), "no transaction was sent");
    for (i, (n, e)) in r.verdicts.iter().enumerate() {
        assert_eq!(
            n.is_ok(),
            e.is_ok(),
            "transaction {i}: the test node said {n:?}, the emulator {e:?}"
        );
        if let (Ok(a), Ok(b)) = (n, e) {
            assert_eq!(a, b, "transaction {i}: ids");
        }
    }
    assert_eq!(node.utxo_set(), r.utxos, "unspent outputs");
    let accounts = node.stake_accounts();
    let ours: BTreeMap<[u8; 28], Option<String>> = accounts
        .iter()
        .map(|(k, a)| (*k, a.pool.map(|p| crate::tx::pool_bech32(&p))))
        .collect();
    assert_eq!(ours, r.pools, "registered stake keys and their pools");
    let deposits: u64 = accounts.values().map(|a| a.deposit).sum();
    assert_eq!(deposits, r.deposits, "deposits held");
}
