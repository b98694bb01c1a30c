-- softstake schema v1 (PostgreSQL). Keep equivalent to ../sqlite/0001_foundation.sql.

-- Liquid balance updates posted by the exchange: absolute balance per
-- (user, asset) from effective_at on. event_id is the idempotency key.
CREATE TABLE balance_updates (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id      TEXT    NOT NULL UNIQUE,
    user_id       TEXT    NOT NULL,
    asset         TEXT    NOT NULL,
    balance       TEXT    NOT NULL CHECK (balance ~ '^(0|[1-9][0-9]*)$'),
    effective_at  BIGINT  NOT NULL,
    received_at   BIGINT  NOT NULL
);
CREATE INDEX balance_updates_asset_user_time ON balance_updates (asset, user_id, effective_at, id);

-- Rewards the chain paid (or an operator recorded), with evidence.
CREATE TABLE rewards (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain         TEXT    NOT NULL,
    reward_key    TEXT    NOT NULL,
    asset         TEXT    NOT NULL,
    period_start  BIGINT  NOT NULL,
    period_end    BIGINT  NOT NULL CHECK (period_end > period_start),
    amount        TEXT    NOT NULL CHECK (amount ~ '^(0|[1-9][0-9]*)$'),
    validator     TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    tx_hash       TEXT,
    epoch         BIGINT,
    recorded_at   BIGINT  NOT NULL,
    UNIQUE (chain, reward_key)
);

-- One distribution per reward (reward_id UNIQUE: distributed exactly once).
-- Totals and the digest of its credit rows let an auditor recompute it
-- (`softstake distributions verify ID`). carry_* and dust_* are in
-- micro-units (1e-18 of a base unit), see crates/ledger/src/split.rs.
CREATE TABLE distributions (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reward_id        BIGINT  NOT NULL UNIQUE REFERENCES rewards (id),
    asset            TEXT    NOT NULL,
    gross            TEXT    NOT NULL CHECK (gross ~ '^(0|[1-9][0-9]*)$'),
    commission_rate  TEXT    NOT NULL,
    min_balance      TEXT    NOT NULL,
    commission       TEXT    NOT NULL CHECK (commission ~ '^(0|[1-9][0-9]*)$'),
    users_pool       TEXT    NOT NULL CHECK (users_pool ~ '^(0|[1-9][0-9]*)$'),
    credited         TEXT    NOT NULL CHECK (credited ~ '^(0|[1-9][0-9]*)$'),
    users_credited   BIGINT  NOT NULL,
    total_weight     TEXT    NOT NULL CHECK (total_weight ~ '^(0|[1-9][0-9]*)$'),
    carry_before     TEXT    NOT NULL CHECK (carry_before ~ '^(0|[1-9][0-9]*)$'),
    carry_after      TEXT    NOT NULL CHECK (carry_after ~ '^(0|[1-9][0-9]*)$'),
    dust_before      TEXT    NOT NULL CHECK (dust_before ~ '^(0|[1-9][0-9]*)$'),
    dust_after       TEXT    NOT NULL CHECK (dust_after ~ '^(0|[1-9][0-9]*)$'),
    digest           TEXT    NOT NULL,
    created_at       BIGINT  NOT NULL
);
CREATE INDEX distributions_asset ON distributions (asset, id);

-- Credits: one row per user with weight in a distribution (amount may be 0
-- when only the carried remainder grew). id is the stable credit id and the
-- outbox cursor; acked_at is set when the exchange acknowledges it. A user's
-- current carried remainder is carry_after of their latest row.
CREATE TABLE credits (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    distribution_id  BIGINT  NOT NULL REFERENCES distributions (id),
    user_id          TEXT    NOT NULL,
    asset            TEXT    NOT NULL,
    amount           TEXT    NOT NULL CHECK (amount ~ '^(0|[1-9][0-9]*)$'),
    weight           TEXT    NOT NULL CHECK (weight ~ '^(0|[1-9][0-9]*)$'),
    carry_after      TEXT    NOT NULL CHECK (carry_after ~ '^(0|[1-9][0-9]*)$'),
    acked_at         BIGINT,
    UNIQUE (distribution_id, user_id)
);
CREATE INDEX credits_asset_user ON credits (asset, user_id, id);
CREATE INDEX credits_user ON credits (user_id, id);

-- Withdrawal liquidity requests from the exchange.
CREATE TABLE withdrawals (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id    TEXT    NOT NULL UNIQUE,
    user_id       TEXT    NOT NULL,
    asset         TEXT    NOT NULL,
    amount        TEXT    NOT NULL CHECK (amount ~ '^(0|[1-9][0-9]*)$'),
    status        TEXT    NOT NULL CHECK (status IN ('granted', 'queued', 'completed', 'cancelled')),
    eta           BIGINT,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);

-- The on-chain operation journal. Signed bytes and tx id are stored before
-- broadcast; see ARCHITECTURE.md for the states and the recovery rule.
CREATE TABLE operations (
    id              TEXT    PRIMARY KEY,
    chain           TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    params          TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    value           TEXT    NOT NULL CHECK (value ~ '^(0|[1-9][0-9]*)$'),
    state           TEXT    NOT NULL CHECK (state IN ('planned', 'awaiting_approval', 'signed', 'broadcast', 'confirmed', 'failed', 'expired')),
    signed_bytes    BYTEA,
    tx_id           TEXT,
    valid_until     BIGINT,
    error           TEXT,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);
CREATE INDEX operations_chain_state ON operations (chain, state);

-- Per-chain control and progress.
CREATE TABLE chain_state (
    chain           TEXT    PRIMARY KEY,
    paused          BOOLEAN NOT NULL DEFAULT FALSE,
    reward_cursor   TEXT,
    last_cycle_at   BIGINT
);
