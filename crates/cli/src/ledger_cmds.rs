//! Operator commands for the ledger: import balances, record rewards,
//! distribute, verify, statements.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use softstake_config::Config;
use softstake_core::adapter::RewardKind;
use softstake_core::{Amount, ChainId, Period, Timestamp};
use softstake_ledger::import::{self, Format};
use softstake_store::{BalanceUpdate, DistributeOptions, DistributeOutcome, NewReward, Store};
use std::path::PathBuf;

/// `softstake balances ...`
#[derive(Debug, Subcommand)]
pub enum BalancesCommand {
    /// Import liquid balance updates from CSV (header
    /// event_id,user_id,asset,balance,effective_at) or JSON Lines. All or
    /// nothing: a bad row is reported with its number and nothing is stored.
    Import {
        /// The file (.csv, .jsonl or .ndjson).
        file: PathBuf,
        /// Force the format instead of guessing from the extension.
        #[arg(long, value_parser = ["csv", "jsonl"])]
        format: Option<String>,
    },
}

/// `softstake rewards ...`
#[derive(Debug, Subcommand)]
pub enum RewardsCommand {
    /// Record a reward by hand (e.g. one the operator reconciled).
    Record(RecordArgs),
    /// List rewards not yet distributed (JSON).
    Pending,
    /// Void a reward that was recorded by mistake, before it is
    /// distributed: it is kept, with when and why, and never distributed.
    Void {
        /// Reward id (`rewards pending` lists them).
        id: i64,
        /// Why (kept with the reward).
        #[arg(long)]
        reason: String,
    },
}

/// Arguments of `rewards record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Chain (ethereum, polkadot, solana, cosmos, cardano, tezos).
    #[arg(long)]
    chain: ChainId,
    /// Unique key of this reward on the chain (e.g. era:1234:VALIDATOR).
    #[arg(long)]
    key: String,
    /// Start of the period it was earned in (RFC 3339 or Unix seconds).
    #[arg(long)]
    from: Timestamp,
    /// End of the period (exclusive).
    #[arg(long)]
    to: Timestamp,
    /// Gross amount in display units ("1.5" ETH).
    #[arg(
        long,
        required_unless_present = "amount_base",
        conflicts_with = "amount_base"
    )]
    amount: Option<String>,
    /// Gross amount in base units ("1500000000000000000" wei), as balance
    /// files and the API count.
    #[arg(long)]
    amount_base: Option<String>,
    /// Validator / pool / baker that produced it.
    #[arg(long)]
    validator: String,
    /// consensus, execution, delegation_payout or manual.
    #[arg(long, default_value = "manual", value_parser = ["consensus", "execution", "delegation_payout", "manual"])]
    kind: String,
    /// Transaction hash, if any.
    #[arg(long)]
    tx_hash: Option<String>,
    /// Epoch / era / cycle, if any.
    #[arg(long)]
    epoch: Option<u64>,
}

/// `softstake outbox ...`: the credit outbox without HTTP (the exchange
/// reads it with `GET /v1/outbox`; operators and scripts use this).
#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Published credits with position above `--after`, in position order
    /// (JSON). Apply each credit once by its `key`.
    List {
        /// Cursor: the last position already seen (`next_cursor`).
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// Acknowledge credits the exchange has applied.
    Ack {
        /// Credit ids.
        #[arg(num_args = 1.., required_unless_present = "keys", conflicts_with = "keys")]
        ids: Vec<i64>,
        /// Credit keys instead of ids (`CHAIN:N:REWARD_KEY:USER`; the same
        /// after a database restore, which ids are not).
        #[arg(long = "key", num_args = 1..)]
        keys: Vec<String>,
    },
}

pub async fn outbox(store: &Store, cmd: OutboxCommand) -> Result<()> {
    match cmd {
        OutboxCommand::List { after, limit } => {
            let credits = store.outbox(after, limit).await?;
            println!("{}", serde_json::to_string_pretty(&credits)?);
        }
        OutboxCommand::Ack { ids, keys } => {
            let n = if keys.is_empty() {
                store.ack_credits(&ids, Timestamp::now()).await?
            } else {
                store.ack_credit_keys(&keys, Timestamp::now()).await?
            };
            println!("{}", serde_json::json!({ "acknowledged": n }));
        }
    }
    Ok(())
}

/// `softstake distributions ...`
#[derive(Debug, Subcommand)]
pub enum DistributionsCommand {
    /// Recompute a distribution from the stored history and compare.
    Verify {
        /// Distribution id.
        id: i64,
    },
}

pub async fn balances(store: &Store, cmd: BalancesCommand) -> Result<()> {
    let BalancesCommand::Import { file, format } = cmd;
    let fmt = match format.as_deref() {
        Some("csv") => Format::Csv,
        Some(_) => Format::JsonLines,
        None => Format::from_path(&file).with_context(|| {
            format!(
                "{}: cannot tell the format from the extension; pass --format csv|jsonl",
                file.display()
            )
        })?,
    };
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let rows = import::parse(&text, fmt)
        .with_context(|| format!("{}: nothing was imported", file.display()))?;
    let batch: Vec<BalanceUpdate> = rows
        .into_iter()
        .map(|r| BalanceUpdate {
            event_id: r.event_id,
            user_id: r.user_id,
            asset: r.chain.asset().to_owned(),
            balance: r.balance,
            effective_at: r.effective_at,
        })
        .collect();
    let report = store
        .ingest_balance_file(&batch, Timestamp::now())
        .await
        .with_context(|| format!("{}: nothing was imported", file.display()))?;
    println!(
        "{}",
        serde_json::to_string(&serde_json::json!({
            "inserted": report.inserted,
            "duplicates": report.duplicates,
        }))?
    );
    Ok(())
}

pub async fn rewards(store: &Store, cmd: RewardsCommand) -> Result<()> {
    match cmd {
        RewardsCommand::Pending => {
            let list = store.undistributed_rewards(None).await?;
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        RewardsCommand::Void { id, reason } => {
            let r = store.void_reward(id, &reason, Timestamp::now()).await?;
            println!("{}", serde_json::to_string(&r)?);
        }
        RewardsCommand::Record(a) => {
            let amount = match (&a.amount, &a.amount_base) {
                (Some(v), _) => Amount::parse_units(v, a.chain.decimals())
                    .with_context(|| format!("--amount (in {})", a.chain.asset()))?,
                (None, Some(v)) => v
                    .parse::<Amount>()
                    .with_context(|| format!("--amount-base (in {})", a.chain.base_unit()))?,
                (None, None) => bail!("give --amount (in {}) or --amount-base", a.chain.asset()),
            };
            let period = Period::new(a.from, a.to)?;
            let kind = match a.kind.as_str() {
                "consensus" => RewardKind::Consensus,
                "execution" => RewardKind::Execution,
                "delegation_payout" => RewardKind::DelegationPayout,
                _ => RewardKind::Manual,
            };
            let r = NewReward {
                chain: a.chain,
                key: a.key,
                period,
                amount,
                validator: a.validator,
                kind,
                tx_hash: a.tx_hash,
                epoch: a.epoch,
            };
            let rec = store.record_reward(&r, Timestamp::now()).await?;
            println!("{}", serde_json::to_string(&rec)?);
        }
    }
    Ok(())
}

/// Distributes one reward (or all pending ones) with each chain's configured
/// commission and eligibility minimum.
pub async fn distribute(store: &Store, cfg: &Config, reward: Option<i64>) -> Result<()> {
    let ids: Vec<(i64, ChainId)> = match reward {
        Some(id) => {
            let r = store
                .reward(id)
                .await?
                .with_context(|| format!("no reward with id {id}"))?;
            vec![(id, r.reward.chain)]
        }
        None => store
            .undistributed_rewards(None)
            .await?
            .into_iter()
            .map(|r| (r.id, r.reward.chain))
            .collect(),
    };
    // Each reward is its own transaction: one that cannot be distributed
    // (its chain is not configured, the store refuses it) is reported and
    // never keeps the others from committing.
    let mut failed = Vec::new();
    for (id, chain) in ids {
        let out = match cfg.chain(chain) {
            None => Err(anyhow::anyhow!(
                "{chain} has no [[chains]] section: its commission is unknown"
            )),
            Some(c) => match store.bunker(chain).await {
                // The daemon waits too: a loss is not accounted yet.
                Ok(b) if b.active => Err(anyhow::anyhow!("{chain} is in {}", b.describe())),
                Ok(_) => {
                    // A loss under the `users` rule whose allocation was
                    // interrupted is allocated first (its shares are netted
                    // from these credits).
                    let opts = DistributeOptions::with_min_balance(c.min_eligible_balance);
                    match store
                        .allocate_losses(chain, &c.books, c.min_eligible_balance, Timestamp::now())
                        .await
                    {
                        Ok(_) => store
                            .distribute(id, c.commission, &opts, Timestamp::now())
                            .await
                            .map_err(anyhow::Error::from),
                        Err(e) => Err(e.into()),
                    }
                }
                Err(e) => Err(e.into()),
            },
        };
        match out {
            Ok(out) => {
                let mut line = serde_json::to_value(&out)?;
                if let Some(o) = line.as_object_mut() {
                    o.insert("reward".into(), id.into());
                    o.insert("committed".into(), true.into());
                }
                println!("{line}");
                if let DistributeOutcome::Distributed(s) = &out {
                    tracing::info!(reward = id, distribution = s.id, credited = %s.credited, "distributed");
                }
            }
            Err(e) => {
                println!(
                    "{}",
                    serde_json::json!({"reward": id, "committed": false, "error": format!("{e:#}")})
                );
                failed.push(id);
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} reward(s) not distributed (nothing was written for them; the others committed): {failed:?}",
            failed.len()
        );
    }
    Ok(())
}

pub async fn distributions(store: &Store, cmd: DistributionsCommand) -> Result<()> {
    let DistributionsCommand::Verify { id } = cmd;
    let report = store.verify_distribution(id).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    if !report.ok {
        bail!(
            "distribution {id} does not match its recomputation: {}",
            report.mismatches.join("; ")
        );
    }
    Ok(())
}

pub async fn statement(
    store: &Store,
    user: &str,
    from: Timestamp,
    to: Timestamp,
    csv: bool,
) -> Result<()> {
    if to <= from {
        bail!("--to must be after --from");
    }
    let lines = store.statement(user, from, to).await?;
    if csv {
        print!("{}", softstake_store::statement_csv(&lines));
    } else {
        println!("{}", serde_json::to_string_pretty(&lines)?);
    }
    Ok(())
}

/// `softstake books ...`: the pool's books (holdings, flows, suspense,
/// incidents, backing).
#[derive(Debug, Subcommand)]
pub enum BooksCommand {
    /// A chain's books and backing: holdings against what is owed.
    Show {
        /// Chain.
        #[arg(long)]
        chain: ChainId,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Holdings snapshots, newest first (JSON).
    Snapshots {
        /// Chain.
        #[arg(long)]
        chain: ChainId,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// The chain's losses, newest first (JSON): each with its period, the
    /// rule it was booked under and, under `users`, how it was split.
    Losses {
        /// Chain.
        #[arg(long)]
        chain: ChainId,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Rewards the chain paid the pool in other denominations than its
    /// coin (the Hub's IBC denominations), per denomination (JSON): never
    /// distributed as the coin; the treasury disposes of them (converted
    /// coins come back as a transfer, declared or classified as income).
    Foreign {
        /// Chain.
        #[arg(long)]
        chain: ChainId,
    },
    /// A user's shares of losses under the `users` rule whose period ended
    /// in [from, to) (JSON): amount, netted, remaining, written off.
    LossShares {
        /// User.
        #[arg(long)]
        user: String,
        /// From (RFC 3339 or Unix seconds), inclusive.
        #[arg(long)]
        from: Timestamp,
        /// To, exclusive.
        #[arg(long)]
        to: Timestamp,
    },
    /// Declare a transfer the exchange made (or will make) to or from the
    /// custody accounts: principal (or the platform's commission), never
    /// income. Resolves a matching suspense or incident at once.
    Declare {
        /// Chain.
        #[arg(long)]
        chain: ChainId,
        /// The chain's transaction id.
        #[arg(long)]
        tx_id: String,
        /// `in` (a top-up) or `out` (a payout).
        #[arg(long, value_parser = ["in", "out"])]
        direction: String,
        /// Amount in the asset's display unit (e.g. 1.5 for ATOM).
        #[arg(long, conflicts_with = "amount_base")]
        amount: Option<String>,
        /// Amount in base units (uatom, wei, ...).
        #[arg(long)]
        amount_base: Option<String>,
        /// `principal` (users' money, the default) or `commission` (the
        /// platform's).
        #[arg(long, default_value = "principal", value_parser = ["principal", "commission"])]
        purpose: String,
        /// Free text.
        #[arg(long)]
        note: Option<String>,
    },
    /// Booked transfers and fees, newest first (JSON); `--open`: only
    /// unresolved suspense and incidents.
    Flows {
        /// Chain.
        #[arg(long)]
        chain: ChainId,
        /// Only open suspense and incidents.
        #[arg(long)]
        open: bool,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Resolve an open suspense (principal, income, returned, commission)
    /// or incident (principal, loss, commission).
    Resolve {
        /// Chain.
        #[arg(long)]
        chain: ChainId,
        /// Flow id (from `books flows --open`).
        #[arg(long)]
        flow: i64,
        /// How.
        #[arg(long = "as", value_parser = ["principal", "income", "returned", "loss", "commission"])]
        resolution: String,
        /// Why (kept with the flow).
        #[arg(long)]
        note: String,
    },
    /// Confirm unannounced income the sanity bound held at the latest
    /// snapshot; the next snapshot recognises it.
    Confirm {
        /// Chain.
        #[arg(long)]
        chain: ChainId,
        /// Why it is right (kept with the confirmation).
        #[arg(long)]
        note: String,
    },
    /// Bunker mode: `--enter` holds the chain's distributions until an
    /// `--exit`; `--exit` ends it for the current fall (a later fall
    /// enters again). Without either, shows the state.
    Bunker {
        /// Chain.
        #[arg(long)]
        chain: ChainId,
        /// Hold the chain in bunker mode.
        #[arg(long, conflicts_with = "exit", requires = "note")]
        enter: bool,
        /// End bunker mode.
        #[arg(long, requires = "note")]
        exit: bool,
        /// What was checked (kept with the action).
        #[arg(long)]
        note: Option<String>,
    },
    /// Validators marked by a loss (no new stake goes to them), open ones
    /// or `--all`.
    Marks {
        /// Chain.
        #[arg(long)]
        chain: ChainId,
        /// Cleared marks too.
        #[arg(long)]
        all: bool,
    },
    /// Clear a validator's loss mark after checking it: new stake may go
    /// to it again.
    Unmark {
        /// Chain.
        #[arg(long)]
        chain: ChainId,
        /// Validator.
        #[arg(long)]
        validator: String,
        /// What was checked (kept with the mark).
        #[arg(long)]
        note: String,
    },
}

pub async fn books(store: &Store, cfg: &Config, cmd: BooksCommand) -> Result<()> {
    use softstake_store::{Declaration, Direction, Purpose, Resolution};
    let policy = |chain: ChainId| cfg.chain(chain).map(|c| c.books).unwrap_or_default();
    match cmd {
        BooksCommand::Show { chain, json } => {
            let b = store.books(chain, &policy(chain), Timestamp::now()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&b)?);
            } else {
                println!("{}", render_books(&b));
            }
        }
        BooksCommand::Losses { chain, limit } => {
            let l = store.losses(chain, limit).await?;
            println!("{}", serde_json::to_string_pretty(&l)?);
        }
        BooksCommand::Foreign { chain } => {
            let t = store.foreign_totals(chain).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"chain": chain, "denominations": t})
                )?
            );
        }
        BooksCommand::LossShares { user, from, to } => {
            if to <= from {
                bail!("--to must be after --from");
            }
            let l = store.loss_shares(&user, from, to, Timestamp::now()).await?;
            println!("{}", serde_json::to_string_pretty(&l)?);
        }
        BooksCommand::Snapshots { chain, limit } => {
            let s = store.snapshots(chain, None, limit).await?;
            println!("{}", serde_json::to_string_pretty(&s)?);
        }
        BooksCommand::Declare {
            chain,
            tx_id,
            direction,
            amount,
            amount_base,
            purpose,
            note,
        } => {
            let amount = match (&amount, &amount_base) {
                (Some(v), _) => Amount::parse_units(v, chain.decimals())
                    .with_context(|| format!("--amount (in {})", chain.asset()))?,
                (None, Some(v)) => v
                    .parse::<Amount>()
                    .with_context(|| format!("--amount-base (in {})", chain.base_unit()))?,
                (None, None) => bail!("give --amount (in {}) or --amount-base", chain.asset()),
            };
            let d = Declaration {
                chain,
                tx_id,
                direction: if direction == "in" {
                    Direction::In
                } else {
                    Direction::Out
                },
                amount,
                purpose: if purpose == "commission" {
                    Purpose::Commission
                } else {
                    Purpose::Principal
                },
                note,
            };
            let r = store.declare_transfer(&d, Timestamp::now()).await?;
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        BooksCommand::Flows { chain, open, limit } => {
            let f = store.flows(chain, open, None, limit).await?;
            println!("{}", serde_json::to_string_pretty(&f)?);
        }
        BooksCommand::Resolve {
            chain,
            flow,
            resolution,
            note,
        } => {
            let how = Resolution::parse(&resolution)
                .with_context(|| format!("unknown resolution {resolution:?}"))?;
            let f = store
                .resolve_flow(chain, flow, how, &note, Timestamp::now())
                .await?;
            println!("{}", serde_json::to_string_pretty(&f)?);
        }
        BooksCommand::Confirm { chain, note } => {
            let (snapshot, amount) = store
                .confirm_residual(chain, &note, Timestamp::now())
                .await?;
            println!(
                "{}",
                serde_json::json!({
                    "chain": chain,
                    "snapshot_id": snapshot,
                    "amount": amount,
                    "note": "the next snapshot recognises it as income",
                })
            );
        }
        BooksCommand::Bunker {
            chain,
            enter,
            exit,
            note,
        } => {
            use softstake_store::BunkerAction;
            let state = match (enter, exit, note) {
                (true, _, Some(n)) => {
                    store
                        .bunker_action(chain, BunkerAction::Enter, &n, Timestamp::now())
                        .await?
                }
                (_, true, Some(n)) => {
                    store
                        .bunker_action(chain, BunkerAction::Exit, &n, Timestamp::now())
                        .await?
                }
                _ => store.bunker(chain).await?,
            };
            println!("{}", serde_json::to_string_pretty(&state)?);
        }
        BooksCommand::Marks { chain, all } => {
            let m = store.validator_marks(chain, !all).await?;
            println!("{}", serde_json::to_string_pretty(&m)?);
        }
        BooksCommand::Unmark {
            chain,
            validator,
            note,
        } => {
            let m = store
                .clear_validator_mark(chain, &validator, &note, Timestamp::now())
                .await?;
            println!("{}", serde_json::to_string_pretty(&m)?);
        }
    }
    Ok(())
}

/// The books as text, amounts in the asset's display unit.
pub fn render_books(b: &softstake_store::Books) -> String {
    let c = b.chain;
    let u = |a: Amount| format!("{} {}", a.format_units(c.decimals()), c.asset());
    let s = |v: i128| {
        format!(
            "{} {}",
            Amount::format_signed_units(v, c.decimals()),
            c.asset()
        )
    };
    let mut out = format!("{c} books\n");
    match &b.snapshot {
        None => out.push_str("  no holdings snapshot yet (the daemon books one every cycle)\n"),
        Some(sn) => {
            out.push_str(&format!(
                "  holdings at {} (snapshot {}, {}): {}\n    liquid {}, staked {}, unbonding {}, withdrawable {}; claimable {} (not booked until evidenced)\n",
                sn.as_of,
                sn.id,
                if sn.complete { "every flow proven" } else { "flows not proven: observing only" },
                u(sn.total),
                u(sn.holdings.liquid),
                u(sn.holdings.staked),
                u(sn.holdings.unbonding),
                u(sn.holdings.withdrawable),
                u(sn.holdings.claimable),
            ));
            out.push_str(&format!(
                "  residual: last {}, unrecognised {}, held for confirmation {}\n",
                s(sn.residual),
                s(sn.unrecognized),
                u(sn.held)
            ));
        }
    }
    let o = &b.owed;
    out.push_str(&format!(
        "  owed {}: users {}, credits not yet acknowledged {}, carried remainders {}, undistributed rewards {}, withdrawals {}, suspense {}, commission {} (fees {} borne by the {}; losses {} borne by the {}; shortfall the platform owes the pool {})\n",
        s(o.total),
        u(o.users),
        u(o.credits_unacked),
        u(o.carried),
        u(o.undistributed),
        u(o.withdrawals),
        u(o.suspense),
        s(o.commission),
        u(o.fees),
        o.fee_bearer,
        u(o.losses),
        o.loss_bearer,
        u(o.shortfall),
    ));
    let ul = &o.users_losses;
    if !ul.booked.is_zero() {
        out.push_str(&format!(
            "  losses under the users rule {}: allocated to users {} (netted from credits {}, still owed by users {}, written off {}); the platform's {}\n",
            u(ul.booked),
            u(ul.allocated),
            u(ul.netted),
            u(ul.receivable),
            u(ul.written_off),
            u(ul.platform),
        ));
    }
    if b.bunker.active || b.bunker.overridden.is_some() {
        out.push_str(&format!(
            "  {}\n",
            b.bunker
                .overridden
                .clone()
                .unwrap_or_else(|| b.bunker.describe())
        ));
    }
    for m in &b.marked_validators {
        out.push_str(&format!(
            "  validator {} marked by a loss of {} at {} ({}): no new stake until `softstake books unmark`\n",
            m.validator,
            u(m.amount),
            m.marked_at,
            m.reason
        ));
    }
    out.push_str(&format!(
        "  backing {} (surplus {}); open: {} suspense ({}), {} incident(s) ({})",
        b.backing_ratio.as_deref().unwrap_or("n/a (nothing owed)"),
        s(b.surplus),
        b.suspense_open,
        u(b.suspense),
        b.incidents_open,
        u(b.incidents),
    ));
    out
}

/// `softstake advances`: each chain's advance line (crates/store/src/advances.rs).
pub async fn advances(store: &Store, cfg: &Config, chain: Option<ChainId>) -> Result<()> {
    let chains: Vec<ChainId> = match chain {
        Some(c) => vec![c],
        None => cfg.chains.iter().map(|c| c.chain).collect(),
    };
    let now = Timestamp::now();
    for chain in chains {
        let limit = cfg
            .chain(chain)
            .map(|c| c.buffer.advance_limit)
            .unwrap_or(Amount::ZERO);
        let line = store.advance_line(chain, 50, now).await?;
        let d = chain.decimals();
        println!(
            "{chain}: limit {} {asset}, outstanding {} (due for repayment {}), {} late",
            limit.format_units(d),
            line.outstanding.format_units(d),
            line.due.format_units(d),
            line.late,
            asset = chain.asset(),
        );
        for a in line.advances.iter().filter(|a| a.status != "repaid") {
            println!(
                "  advance {} for withdrawal {}: {} {}, {}, expected back {}{}",
                a.id,
                a.request_id,
                a.amount.format_units(d),
                chain.asset(),
                a.status,
                a.expected_at,
                if a.expected_at < now { " (late)" } else { "" }
            );
        }
    }
    Ok(())
}
