-- softstake schema v7 (PostgreSQL). Keep equivalent to ../sqlite/0007_pool_books.sql.
-- The pool's books (crates/store/src/books.rs): each engine cycle records
-- a holdings snapshot of the chain's custody accounts, books the flows the
-- adapter proves since the previous one (transfers with their tx ids,
-- fees) and the rewards recorded since, and keeps the residual
-- (change in holdings - booked flows), which is never dropped: it is
-- carried as `unrecognized` until it is recognised as income (a reward of
-- kind `reconciled`) or explained. Amounts are canonical base-unit text;
-- signed ones (delta, residual, unrecognized) may start with '-'.
CREATE TABLE pool_snapshots (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain           TEXT    COLLATE "C" NOT NULL,
    as_of           BIGINT  NOT NULL,
    taken_at        BIGINT  NOT NULL,
    complete        BOOLEAN NOT NULL,
    liquid          TEXT    NOT NULL CHECK (liquid ~ '^(0|[1-9][0-9]*)$'),
    staked          TEXT    NOT NULL CHECK (staked ~ '^(0|[1-9][0-9]*)$'),
    unbonding       TEXT    NOT NULL CHECK (unbonding ~ '^(0|[1-9][0-9]*)$'),
    withdrawable    TEXT    NOT NULL CHECK (withdrawable ~ '^(0|[1-9][0-9]*)$'),
    claimable       TEXT    NOT NULL CHECK (claimable ~ '^(0|[1-9][0-9]*)$'),
    total           TEXT    NOT NULL CHECK (total ~ '^(0|[1-9][0-9]*)$'),
    -- What the interval since the previous snapshot booked (JSON object of
    -- base-unit amounts by account: rewards, principal_in, principal_out,
    -- suspense, incident, fees, losses, reconciled), for reading only; the
    -- flows themselves are rows of pool_flows.
    booked          TEXT    NOT NULL,
    delta           TEXT    NOT NULL CHECK (delta ~ '^(0|-?[1-9][0-9]*)$'),
    residual        TEXT    NOT NULL CHECK (residual ~ '^(0|-?[1-9][0-9]*)$'),
    unrecognized    TEXT    NOT NULL CHECK (unrecognized ~ '^(0|-?[1-9][0-9]*)$'),
    -- Income found this time but held by the sanity bound until confirmed.
    held            TEXT    NOT NULL CHECK (held ~ '^(0|[1-9][0-9]*)$'),
    reconciled_reward_id BIGINT REFERENCES rewards (id),
    flow_cursor     TEXT
);
CREATE INDEX pool_snapshots_chain ON pool_snapshots (chain, id);

-- Every flow the adapter proved, booked once (UNIQUE chain, flow_key).
-- class: principal (a declared transfer), suspense (an undeclared inflow:
-- never distributed until classified), incident (an undeclared outflow:
-- the chain signs nothing until it is booked), fee, commission (a
-- declared withdrawal of the platform's commission).
CREATE TABLE pool_flows (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain           TEXT    COLLATE "C" NOT NULL,
    flow_key        TEXT    COLLATE "C" NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('transfer_in', 'transfer_out', 'fee')),
    amount          TEXT    NOT NULL CHECK (amount ~ '^[1-9][0-9]*$'),
    tx_id           TEXT    COLLATE "C" NOT NULL,
    counterparty    TEXT,
    at              BIGINT  NOT NULL,
    snapshot_id     BIGINT  NOT NULL REFERENCES pool_snapshots (id),
    class           TEXT    NOT NULL CHECK (class IN ('principal', 'suspense', 'incident', 'fee', 'commission')),
    resolution      TEXT    CHECK (resolution IN ('principal', 'income', 'returned', 'loss', 'commission')),
    resolved_at     BIGINT,
    resolution_note TEXT,
    reward_id       BIGINT  REFERENCES rewards (id),
    UNIQUE (chain, flow_key)
);
CREATE INDEX pool_flows_tx ON pool_flows (chain, tx_id);

-- Transfers the exchange (or an operator) declares it made to or from the
-- custody accounts, before or after they land. purpose: principal (users'
-- deposits and withdrawals) or commission (the platform taking its
-- commission out, or paying in to cover fees).
CREATE TABLE transfer_declarations (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain           TEXT    COLLATE "C" NOT NULL,
    tx_id           TEXT    COLLATE "C" NOT NULL,
    direction       TEXT    NOT NULL CHECK (direction IN ('in', 'out')),
    amount          TEXT    NOT NULL CHECK (amount ~ '^[1-9][0-9]*$'),
    purpose         TEXT    NOT NULL CHECK (purpose IN ('principal', 'commission')),
    note            TEXT,
    declared_at     BIGINT  NOT NULL,
    UNIQUE (chain, tx_id, direction)
);

-- An operator's confirmation of income the sanity bound held.
CREATE TABLE residual_confirmations (
    snapshot_id     BIGINT  PRIMARY KEY REFERENCES pool_snapshots (id),
    chain           TEXT    COLLATE "C" NOT NULL,
    amount          TEXT    NOT NULL CHECK (amount ~ '^[1-9][0-9]*$'),
    note            TEXT    NOT NULL,
    confirmed_at    BIGINT  NOT NULL
);

-- Which snapshot booked a reward as income the pool received (NULL: not
-- booked yet). Rewards of kind `reconciled` are booked where they are found.
ALTER TABLE rewards ADD COLUMN booked_snapshot_id BIGINT;
