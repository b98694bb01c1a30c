//! Losses: bunker mode and marked validators.
//!
//! **Bunker mode.** While a chain's books show an unexplained fall (the
//! latest snapshot proves every flow and its unrecognised residual is below
//! zero), what the pool holds is less than the books explain and nobody
//! knows yet whether it is a loss: the chain's rewards are not distributed
//! (the engine's distribute step and `softstake distribute` wait) until the
//! fall is booked as a loss (books.rs recognises a fall that persisted) or
//! comes back. Queued withdrawals keep their place and are granted from the
//! buffer as usual: they are users' balances, which a loss does not touch
//! under either rule. The state is derived from the snapshots, so it
//! survives restarts and restores and cannot be lost with memory.
//!
//! An operator can end it for the current fall (`exit`: recorded with the
//! latest snapshot's id, so the next fall enters again) or hold a chain in
//! it (`enter`, e.g. for a slashing the adapter cannot see, until an
//! `exit`). The latest action counts.
//!
//! **Marked validators.** A loss the chain reports against a validator
//! (books.rs, in the snapshot's transaction) marks it: the planner treats
//! it as impaired, so no new stake goes to it, until an operator clears the
//! mark. Unlike a chain's own flags (jailed, delinquent), which end when the
//! validator recovers, a mark ends only when someone has looked.

use crate::{StoreError, on_pool, parse_amount};
use serde::Serialize;
use softstake_core::{Amount, ChainId, Timestamp};

/// How many snapshots back a fall is followed to find where it began.
const FALL_LOOKBACK: i64 = 10_000;

/// An operator's bunker action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BunkerAction {
    /// Hold the chain in bunker mode until an `exit`.
    Enter,
    /// End bunker mode for the current fall (or a held `enter`).
    Exit,
}

impl BunkerAction {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            BunkerAction::Enter => "enter",
            BunkerAction::Exit => "exit",
        }
    }

    /// Parses a stable name.
    pub fn parse(s: &str) -> Option<BunkerAction> {
        match s {
            "enter" => Some(BunkerAction::Enter),
            "exit" => Some(BunkerAction::Exit),
            _ => None,
        }
    }
}

/// Why a chain is in bunker mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "cause", rename_all = "snake_case")]
pub enum BunkerCause {
    /// The books show holdings below what they explain.
    UnexplainedFall {
        /// The first snapshot of the fall.
        since_snapshot: i64,
        /// Its chain time.
        since: Timestamp,
        /// How far below (base units), as of the latest snapshot.
        shortfall: Amount,
    },
    /// An operator entered it.
    Operator {
        /// Their note.
        note: String,
        /// When.
        at: Timestamp,
    },
}

/// A chain's bunker state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bunker {
    /// Whether the chain's distributions wait.
    pub active: bool,
    /// Why (when active).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<BunkerCause>,
    /// A fall an operator ended bunker mode for (it is not booked as a
    /// loss yet, and distributions go on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overridden: Option<String>,
}

impl Bunker {
    /// One line for logs, reports and errors.
    pub fn describe(&self) -> String {
        match &self.cause {
            None => "not in bunker mode".to_owned(),
            Some(BunkerCause::UnexplainedFall {
                since_snapshot,
                shortfall,
                ..
            }) => format!(
                "bunker mode: holdings are {shortfall} base units below what the books explain since snapshot {since_snapshot}; rewards are not distributed until the fall is booked as a loss or comes back (or `softstake books bunker --exit`)"
            ),
            Some(BunkerCause::Operator { note, .. }) => format!(
                "bunker mode entered by an operator ({note}); rewards are not distributed until `softstake books bunker --exit`"
            ),
        }
    }
}

/// A validator marked by a loss.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidatorMark {
    /// Row id.
    pub id: i64,
    /// Chain.
    pub chain: String,
    /// Validator.
    pub validator: String,
    /// What the chain showed.
    pub reason: String,
    /// The loss reported (base units).
    pub amount: Amount,
    /// The snapshot that booked it.
    pub snapshot_id: i64,
    /// When.
    pub marked_at: Timestamp,
    /// When an operator cleared it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cleared_at: Option<Timestamp>,
    /// Their note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clear_note: Option<String>,
}

type MarkRow = (
    i64,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<String>,
);

fn mark(r: MarkRow) -> Result<ValidatorMark, StoreError> {
    Ok(ValidatorMark {
        id: r.0,
        chain: r.1,
        validator: r.2,
        reason: r.3,
        amount: parse_amount("validator_marks.amount", &r.4)?,
        snapshot_id: r.5,
        marked_at: Timestamp::from_unix(r.6),
        cleared_at: r.7.map(Timestamp::from_unix),
        clear_note: r.8,
    })
}

fn parse_signed(s: &str) -> Result<i128, StoreError> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("pool_snapshots.unrecognized: {s:?}")))
}

fn note_ok(note: &str) -> Result<(), StoreError> {
    if note.trim().is_empty() || note.len() > 1024 {
        return Err(StoreError::Invalid(
            "a note is required (1 to 1,024 bytes): say what was checked".into(),
        ));
    }
    Ok(())
}

impl crate::Store {
    /// The chain's bunker state (module docs).
    pub async fn bunker(&self, chain: ChainId) -> Result<Bunker, StoreError> {
        let c = chain.as_str();
        let action: Option<(String, Option<i64>, String, i64)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT action, snapshot_id, note, at FROM bunker_actions WHERE chain = $1 ORDER BY id DESC LIMIT 1")
                .bind(c)
                .fetch_optional(pool)
                .await?
        });
        if let Some((a, _, note, at)) = &action
            && a == "enter"
        {
            return Ok(Bunker {
                active: true,
                cause: Some(BunkerCause::Operator {
                    note: note.clone(),
                    at: Timestamp::from_unix(*at),
                }),
                overridden: None,
            });
        }
        let none = Bunker {
            active: false,
            cause: None,
            overridden: None,
        };
        // The latest snapshot decides (one row in the usual case).
        let latest: Option<(i64, i64, bool, String)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT id, as_of, complete, unrecognized FROM pool_snapshots WHERE chain = $1 ORDER BY id DESC LIMIT 1")
                .bind(c)
                .fetch_optional(pool)
                .await?
        });
        let Some((latest_id, latest_as_of, complete, latest)) = latest else {
            return Ok(none);
        };
        let latest = parse_signed(&latest)?;
        if !complete || latest >= 0 {
            return Ok(none);
        }
        // A fall: where did it begin? Walk back, newest first.
        let rows: Vec<(i64, i64, String)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT id, as_of, unrecognized FROM pool_snapshots WHERE chain = $1 AND id < $2 ORDER BY id DESC LIMIT $3")
                .bind(c)
                .bind(latest_id)
                .bind(FALL_LOOKBACK)
                .fetch_all(pool)
                .await?
        });
        let mut start = (latest_id, latest_as_of);
        for (id, as_of, u) in &rows {
            if parse_signed(u)? >= 0 {
                break;
            }
            start = (*id, *as_of);
        }
        let shortfall = Amount::from_base(latest.unsigned_abs());
        if let Some((_, Some(exited_at), note, _)) = &action
            && *exited_at >= start.0
        {
            return Ok(Bunker {
                overridden: Some(format!(
                    "an operator ended bunker mode for the fall since snapshot {} ({note}); {shortfall} base units are not booked as a loss yet",
                    start.0
                )),
                ..none
            });
        }
        Ok(Bunker {
            active: true,
            cause: Some(BunkerCause::UnexplainedFall {
                since_snapshot: start.0,
                since: Timestamp::from_unix(start.1),
                shortfall,
            }),
            overridden: None,
        })
    }

    /// Records an operator's bunker action and returns the state after it.
    /// `exit` is refused when the chain is not in bunker mode (nothing to
    /// end), `enter` when an operator already holds it there.
    pub async fn bunker_action(
        &self,
        chain: ChainId,
        action: BunkerAction,
        note: &str,
        now: Timestamp,
    ) -> Result<Bunker, StoreError> {
        note_ok(note)?;
        let before = self.bunker(chain).await?;
        match (action, &before.cause) {
            (BunkerAction::Exit, None) => {
                return Err(StoreError::Invalid(format!(
                    "{chain} is not in bunker mode: nothing to exit"
                )));
            }
            (BunkerAction::Enter, Some(BunkerCause::Operator { .. })) => {
                return Err(StoreError::Invalid(format!(
                    "{chain} is already held in bunker mode by an operator"
                )));
            }
            _ => {}
        }
        let c = chain.as_str();
        on_pool!(self, pool => {
            let mut tx = crate::BeginWrite::begin_write(pool).await?;
            crate::fence::FenceCheck::check_fence(&mut tx, self.fence.as_ref()).await?;
            <Self as crate::AssetLock<_>>::lock(&mut tx, chain).await?;
            let latest: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM pool_snapshots WHERE chain = $1")
                .bind(c)
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO bunker_actions (chain, action, snapshot_id, note, at) VALUES ($1, $2, $3, $4, $5)")
                .bind(c)
                .bind(action.as_str())
                .bind(latest)
                .bind(note)
                .bind(now.unix())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        self.bunker(chain).await
    }

    /// The chain's validator marks: open ones, or all (newest first).
    pub async fn validator_marks(
        &self,
        chain: ChainId,
        open_only: bool,
    ) -> Result<Vec<ValidatorMark>, StoreError> {
        let sql = if open_only {
            "SELECT id, chain, validator, reason, amount, snapshot_id, marked_at, cleared_at, clear_note FROM validator_marks WHERE chain = $1 AND cleared_at IS NULL ORDER BY id DESC"
        } else {
            "SELECT id, chain, validator, reason, amount, snapshot_id, marked_at, cleared_at, clear_note FROM validator_marks WHERE chain = $1 ORDER BY id DESC"
        };
        let rows: Vec<MarkRow> = on_pool!(self, pool => {
            sqlx::query_as(sql).bind(chain.as_str()).fetch_all(pool).await?
        });
        rows.into_iter().map(mark).collect()
    }

    /// Clears a validator's open mark (an operator has looked): stake may
    /// go to it again. Refused when it has none.
    pub async fn clear_validator_mark(
        &self,
        chain: ChainId,
        validator: &str,
        note: &str,
        now: Timestamp,
    ) -> Result<ValidatorMark, StoreError> {
        note_ok(note)?;
        let row: Option<MarkRow> = on_pool!(self, pool => {
            let mut tx = crate::BeginWrite::begin_write(pool).await?;
            crate::fence::FenceCheck::check_fence(&mut tx, self.fence.as_ref()).await?;
            let row: Option<MarkRow> = sqlx::query_as(
                "UPDATE validator_marks SET cleared_at = $1, clear_note = $2 WHERE chain = $3 AND validator = $4 AND cleared_at IS NULL \
                 RETURNING id, chain, validator, reason, amount, snapshot_id, marked_at, cleared_at, clear_note",
            )
            .bind(now.unix())
            .bind(note)
            .bind(chain.as_str())
            .bind(validator)
            .fetch_optional(&mut *tx)
            .await?;
            tx.commit().await?;
            row
        });
        row.map(mark).transpose()?.ok_or_else(|| {
            StoreError::Invalid(format!(
                "{validator} has no open mark on {chain}: nothing to clear"
            ))
        })
    }
}
