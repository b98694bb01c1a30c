//! What the adapter reads out of Octez RPC answers, as pure functions over
//! the JSON, so that the same code is checked against outputs recorded from
//! octez and Taquito (tests/fixtures/xtz) and against the test node.
//!
//! Shapes (octez `docs/alpha/token_management.rst`, protocols Paris and
//! later): a balance update of `kind: "freezer"`, `category: "deposits"`
//! names its account by `staker`, one of `{contract, delegate}` (one
//! staker's own deposits: only in stake, unstake and finalize receipts and
//! slashing), `{delegate}` (the pool shared by a baker's external stakers),
//! `{baker_own_stake}` or `{baker_edge}`; `category: "unstaked_deposits"`
//! adds the `cycle` of the request. Amounts are decimal strings of mutez.

use serde_json::Value;

/// A mutez amount sent as a string (or a small JSON number). The protocol
/// keeps tez in 64 bits, so anything wider is refused: sums of these in
/// `u128` cannot overflow.
pub fn mutez(v: &Value) -> Option<u128> {
    v.as_str()
        .and_then(|s| s.parse::<u64>().ok())
        .or_else(|| v.as_u64())
        .map(u128::from)
}

/// A signed balance-update change (64 bits in the protocol, so sums in
/// `i128` cannot overflow).
pub fn change(v: &Value) -> Option<i128> {
    v.as_str()
        .and_then(|s| s.parse::<i64>().ok())
        .or_else(|| v.as_i64())
        .map(i128::from)
}

fn int(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// The protocol constants the adapter uses (`context/constants`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Constants {
    /// Blocks per cycle in the current protocol.
    pub blocks_per_cycle: i64,
    /// Seconds between blocks at round 0.
    pub block_secs: i64,
    /// An unstake requested in cycle n is finalizable from cycle
    /// n + this + 1.
    pub unstake_delay: i64,
    /// How many levels an operation's branch stays valid.
    pub ttl: i64,
}

/// Reads [`Constants`]; `None` names the missing field.
pub fn constants(c: &Value) -> Result<Constants, String> {
    let field = |k: &str| int(&c[k]).ok_or_else(|| format!("constants: no {k}"));
    Ok(Constants {
        blocks_per_cycle: field("blocks_per_cycle")?.max(1),
        block_secs: field("minimal_block_delay")?.max(1),
        unstake_delay: field("unstake_finalization_delay")?,
        ttl: field("max_operations_time_to_live")?.max(1),
    })
}

/// Where a level sits (`helpers/current_level`, a block's
/// `metadata.level_info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelInfo {
    /// The level.
    pub level: i64,
    /// Its cycle.
    pub cycle: i64,
    /// Its position in the cycle, from 0.
    pub cycle_position: i64,
}

/// Reads a [`LevelInfo`].
pub fn level_info(v: &Value) -> Result<LevelInfo, String> {
    let field = |k: &str| int(&v[k]).ok_or_else(|| format!("level info: no {k}"));
    Ok(LevelInfo {
        level: field("level")?,
        cycle: field("cycle")?,
        cycle_position: field("cycle_position")?,
    })
}

/// The first and last levels of a cycle (`helpers/levels_in_current_cycle`).
pub fn cycle_levels(v: &Value) -> Result<(i64, i64), String> {
    match (int(&v["first"]), int(&v["last"])) {
        (Some(f), Some(l)) if f <= l => Ok((f, l)),
        _ => Err(format!("levels of a cycle: {v}")),
    }
}

/// An account's unstake requests (`context/contracts/<pkh>/unstake_requests`;
/// `null` when it has none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnstakeRequests {
    /// The baker they were unstaked from.
    pub delegate: Option<String>,
    /// Finalizable now, in mutez.
    pub finalizable: u128,
    /// Still frozen: (cycle requested, mutez).
    pub unfinalizable: Vec<(i64, u128)>,
}

/// Reads [`UnstakeRequests`].
pub fn unstake_requests(v: &Value) -> UnstakeRequests {
    if v.is_null() {
        return UnstakeRequests::default();
    }
    let finalizable = v["finalizable"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| mutez(&r["amount"])).sum())
        .unwrap_or(0);
    let unfinalizable = v["unfinalizable"]["requests"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| Some((int(&r["cycle"])?, mutez(&r["amount"])?)))
                .collect()
        })
        .unwrap_or_default();
    let delegate = v["unfinalizable"]["delegate"]
        .as_str()
        .or_else(|| v["finalizable"][0]["delegate"].as_str())
        .map(str::to_owned);
    UnstakeRequests {
        delegate,
        finalizable,
        unfinalizable,
    }
}

/// What a baker offers external stakers (`context/delegates/<pkh>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BakerInfo {
    /// External stake it accepts, in millionths of its own stake (0: none).
    pub limit_millionth: u128,
    /// Its cut of its stakers' rewards, in billionths.
    pub edge_billionth: u128,
    /// Its own staked funds.
    pub own_staked: u128,
    /// Its external stakers' funds.
    pub external_staked: u128,
    /// Deactivated (no rights, no rewards).
    pub deactivated: bool,
}

impl BakerInfo {
    /// How much more external stake it takes before it is over its limit
    /// (beyond it, stake counts as delegated and earns less).
    pub fn room(&self) -> u128 {
        self.own_staked
            .checked_mul(self.limit_millionth)
            .map_or(u128::MAX, |x| x / 1_000_000)
            .saturating_sub(self.external_staked)
    }
}

/// Reads [`BakerInfo`] from the full delegate object.
pub fn baker(v: &Value) -> Result<BakerInfo, String> {
    let p = &v["active_staking_parameters"];
    let field = |x: &Value, k: &str| mutez(x).ok_or_else(|| format!("delegate: no {k}"));
    Ok(BakerInfo {
        limit_millionth: field(
            &p["limit_of_staking_over_baking_millionth"],
            "limit_of_staking_over_baking_millionth",
        )?,
        edge_billionth: field(
            &p["edge_of_baking_over_staking_billionth"],
            "edge_of_baking_over_staking_billionth",
        )?,
        own_staked: field(&v["own_staked"], "own_staked")?,
        external_staked: field(&v["external_staked"], "external_staked")?,
        deactivated: v["deactivated"].as_bool().unwrap_or(false),
    })
}

/// Every balance update of an operation: fee updates, each content's
/// result and its internal results.
fn operation_updates(op: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for c in op["contents"].as_array().into_iter().flatten() {
        let md = &c["metadata"];
        out.extend(md["balance_updates"].as_array().into_iter().flatten());
        out.extend(
            md["operation_result"]["balance_updates"]
                .as_array()
                .into_iter()
                .flatten(),
        );
        for i in md["internal_operation_results"]
            .as_array()
            .into_iter()
            .flatten()
        {
            out.extend(
                i["result"]["balance_updates"]
                    .as_array()
                    .into_iter()
                    .flatten(),
            );
        }
    }
    out
}

/// How an operation changed `staker`'s own staked deposits (stake +,
/// unstake -, a change of delegate -everything): the sum of its
/// `freezer`/`deposits` updates whose staker is `{contract: staker}`.
pub fn own_deposit_change(op: &Value, staker: &str) -> i128 {
    operation_updates(op)
        .into_iter()
        .filter(|u| {
            u["kind"] == "freezer"
                && u["category"] == "deposits"
                && u["staker"]["contract"] == staker
        })
        .filter_map(|u| change(&u["change"]))
        .sum()
}

/// Whether any content of the operation has `who` as its source.
pub fn is_source(op: &Value, who: &str) -> bool {
    op["contents"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["source"] == who)
}

/// A baker's credits in one block's metadata (`metadata.balance_updates`):
/// its external stakers' pool, its own stake and its edge; negative
/// changes to the pool (slashing) apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolCredits {
    /// Credited to `{"staker":{"delegate": baker}}`.
    pub stakers: i128,
    /// Credited to `{"staker":{"baker_own_stake": baker}}`.
    pub own: i128,
    /// Credited to `{"staker":{"baker_edge": baker}}`.
    pub edge: i128,
    /// Taken from the stakers' pool (slashing), as a positive amount.
    pub slashed: i128,
}

/// Reads [`PoolCredits`] of `baker` from a block's metadata.
pub fn pool_credits(metadata: &Value, baker: &str) -> PoolCredits {
    let mut p = PoolCredits::default();
    for u in metadata["balance_updates"].as_array().into_iter().flatten() {
        if u["kind"] != "freezer" || u["category"] != "deposits" {
            continue;
        }
        let Some(x) = change(&u["change"]) else {
            continue;
        };
        let s = &u["staker"];
        if s.get("contract").is_some() {
            continue;
        }
        if s["delegate"] == baker {
            if x >= 0 {
                p.stakers += x;
            } else {
                p.slashed -= x;
            }
        } else if s["baker_own_stake"] == baker {
            p.own += x;
        } else if s["baker_edge"] == baker {
            p.edge += x;
        }
    }
    p
}

/// An applied transaction in a block's manager operations that pays `to`
/// from one of `payers`: (operation hash, payer, mutez).
pub fn payouts<'a>(ops: &'a [Value], to: &str, payers: &[String]) -> Vec<(&'a str, &'a str, u128)> {
    let mut out = Vec::new();
    for op in ops {
        for c in op["contents"].as_array().into_iter().flatten() {
            let Some(src) = c["source"].as_str() else {
                continue;
            };
            if c["kind"] == "transaction"
                && c["destination"] == to
                && payers.iter().any(|p| p == src)
                && c["metadata"]["operation_result"]["status"] == "applied"
                && let Some(amount) = mutez(&c["amount"])
            {
                out.push((op["hash"].as_str().unwrap_or(""), src, amount));
            }
        }
    }
    out
}

/// One movement of tez into or out of the custody account in a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// Unique per chain: `fee:OP:i`, `in:OP:i:j`, `out:OP:i:j`,
    /// `burn:OP:i:j` (`i` the content, `j` the update, internal results as
    /// `i.k`).
    pub key: String,
    /// In, out, or a fee (fees and storage burns).
    pub kind: softstake_core::adapter::FlowKind,
    /// Mutez, positive.
    pub amount: u128,
    /// The operation hash.
    pub op: String,
    /// The other side.
    pub counterparty: Option<String>,
}

const STAKING_ENTRYPOINTS: [&str; 3] = ["stake", "unstake", "finalize_unstake"];

/// The flows of `me` in one block's manager operations (pass 3), from
/// their receipts: fees paid, tez received or sent (internal operations
/// included), storage burned. Not flows: the account's staking calls
/// (stake, unstake, finalize, whoever sends them: tez only moves between
/// its spendable and frozen balances), payouts from `payers` (rewards, which
/// the rewards scan evidences), and a transfer to itself.
pub fn block_flows(ops: &[Value], me: &str, payers: &[String]) -> Vec<Flow> {
    use softstake_core::adapter::FlowKind;
    let mut out = Vec::new();
    for op in ops {
        let hash = op["hash"].as_str().unwrap_or("");
        for (i, c) in op["contents"].as_array().into_iter().flatten().enumerate() {
            let md = &c["metadata"];
            for u in md["balance_updates"].as_array().into_iter().flatten() {
                if u["kind"] == "contract"
                    && u["contract"] == me
                    && let Some(x) = change(&u["change"]).filter(|x| *x < 0)
                {
                    out.push(Flow {
                        key: format!("fee:{hash}:{i}"),
                        kind: FlowKind::Fee,
                        amount: x.unsigned_abs(),
                        op: hash.to_owned(),
                        counterparty: None,
                    });
                }
            }
            let internal = md["internal_operation_results"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
                .map(|(k, r)| (format!("{i}.{k}"), r, &r["result"]));
            let top = std::iter::once((i.to_string(), c, &md["operation_result"]));
            for (at, content, result) in top.chain(internal) {
                let staking = content["kind"] == "transaction"
                    && content["destination"] == me
                    && content["parameters"]["entrypoint"]
                        .as_str()
                        .is_some_and(|e| STAKING_ENTRYPOINTS.contains(&e));
                let payout = content["destination"] == me
                    && content["source"]
                        .as_str()
                        .is_some_and(|s| payers.iter().any(|p| p == s));
                let to_self = content["source"] == me && content["destination"] == me;
                if staking || payout || to_self || result["status"] != "applied" {
                    continue;
                }
                let updates: Vec<&Value> = result["balance_updates"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .collect();
                for (j, u) in updates.iter().enumerate() {
                    if u["kind"] != "contract" || u["contract"] != me {
                        continue;
                    }
                    let Some(x) = change(&u["change"]).filter(|x| *x != 0) else {
                        continue;
                    };
                    let burned = updates.get(j + 1).is_some_and(|n| n["kind"] == "burned");
                    let (prefix, kind, other) = match (x > 0, burned) {
                        (true, _) => ("in", FlowKind::TransferIn, &content["source"]),
                        (false, true) => ("burn", FlowKind::Fee, &Value::Null),
                        (false, false) => ("out", FlowKind::TransferOut, &content["destination"]),
                    };
                    out.push(Flow {
                        key: format!("{prefix}:{hash}:{at}:{j}"),
                        kind,
                        amount: x.unsigned_abs(),
                        op: hash.to_owned(),
                        counterparty: other.as_str().map(str::to_owned),
                    });
                }
            }
        }
    }
    out
}

/// Why an included operation did not apply (`operation failed`,
/// `operation backtracked`, ...), or `None` when every content applied.
pub fn failure(op: &Value) -> Option<String> {
    op["contents"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            c["metadata"]["operation_result"]["status"]
                .as_str()
                .unwrap_or("")
        })
        .find(|s| *s != "applied")
        .map(|s| format!("operation {s}"))
}

/// The staking operation softstake signs that an operation of `me` is, if
/// it is one: decoded from its contents and receipts. `Err` names what it
/// is instead (a plain transfer, another account's operation).
pub fn found_operation(
    op: &Value,
    me: &str,
    delegate: Option<&str>,
) -> Result<(softstake_core::adapter::OperationKind, Option<String>), String> {
    use softstake_core::Amount;
    use softstake_core::adapter::OperationKind;
    let contents: Vec<&Value> = op["contents"].as_array().into_iter().flatten().collect();
    if contents.is_empty() || contents.iter().any(|c| c["source"] != me) {
        return Err("not an operation of the custody account".into());
    }
    let failed = failure(op);
    let set_delegate = contents
        .iter()
        .find(|c| c["kind"] == "delegation")
        .map(|c| c["delegate"].as_str().map(str::to_owned));
    let baker = set_delegate
        .clone()
        .flatten()
        .or(delegate.map(str::to_owned))
        .unwrap_or_default();
    let mut kind = None;
    for c in &contents {
        match c["kind"].as_str().unwrap_or("") {
            "reveal" | "delegation" => {}
            "transaction" if c["destination"] == me => {
                let amount = Amount::from_base(mutez(&c["amount"]).unwrap_or(0));
                kind = Some(match c["parameters"]["entrypoint"].as_str() {
                    Some("stake") => OperationKind::Delegate {
                        validator: baker.clone(),
                        amount,
                    },
                    Some("unstake") => OperationKind::Undelegate {
                        validator: baker.clone(),
                        amount,
                    },
                    Some("finalize_unstake") => {
                        let got: i128 = operation_updates(op)
                            .into_iter()
                            .filter(|u| u["kind"] == "contract" && u["contract"] == me)
                            .filter_map(|u| change(&u["change"]))
                            .filter(|x| *x > 0)
                            .sum();
                        OperationKind::WithdrawUnbonded {
                            amount: Amount::from_base(got.unsigned_abs()),
                        }
                    }
                    _ => return Err("a transfer to itself".into()),
                });
            }
            other => return Err(format!("a {other} to another account")),
        }
    }
    let kind = match (kind, set_delegate) {
        (Some(k), _) => k,
        (None, Some(Some(d))) => OperationKind::Delegate {
            validator: d,
            amount: Amount::ZERO,
        },
        (None, Some(None)) => OperationKind::Setup {
            step: "remove_delegate".into(),
        },
        (None, None) => OperationKind::Setup {
            step: "reveal".into(),
        },
    };
    Ok((kind, failed))
}
