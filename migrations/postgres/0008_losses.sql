-- softstake schema v8 (PostgreSQL). Keep equivalent to ../sqlite/0008_losses.sql.
-- Losses (crates/store/src/losses.rs).
--
-- Bunker mode: while a chain's books show an unexplained fall (a complete
-- snapshot whose unrecognised residual is below zero), the chain's rewards
-- are not distributed until the fall is booked as a loss or comes back.
-- An operator can end it for the current fall (`exit`, with the latest
-- snapshot's id: a later fall enters again) or hold a chain in it
-- (`enter`, until an `exit`). The latest action counts.
CREATE TABLE bunker_actions (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain           TEXT    COLLATE "C" NOT NULL,
    action          TEXT    NOT NULL CHECK (action IN ('enter', 'exit')),
    snapshot_id     BIGINT  REFERENCES pool_snapshots (id),
    note            TEXT    NOT NULL,
    at              BIGINT  NOT NULL
);
CREATE INDEX bunker_actions_chain ON bunker_actions (chain, id);

-- A validator the pool lost stake with (a loss the chain reported against
-- it): no new stake goes to it until an operator clears the mark. Marked
-- by the snapshot that booked the loss, once per open mark.
CREATE TABLE validator_marks (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain           TEXT    COLLATE "C" NOT NULL,
    validator       TEXT    COLLATE "C" NOT NULL,
    reason          TEXT    NOT NULL,
    amount          TEXT    NOT NULL CHECK (amount ~ '^(0|[1-9][0-9]*)$'),
    snapshot_id     BIGINT  NOT NULL REFERENCES pool_snapshots (id),
    marked_at       BIGINT  NOT NULL,
    cleared_at      BIGINT,
    clear_note      TEXT
);
CREATE UNIQUE INDEX validator_marks_open ON validator_marks (chain, validator) WHERE cleared_at IS NULL;
