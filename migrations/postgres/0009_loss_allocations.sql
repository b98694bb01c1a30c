-- softstake schema v9 (PostgreSQL). Keep equivalent to ../sqlite/0009_loss_allocations.sql.
-- Losses booked by a rule (crates/store/src/losses.rs, "users" rule).
--
-- One row per loss a snapshot booked (reported by the chain, or a fall
-- that persisted), with the rule in force when it was booked. Under
-- `users` the loss is allocated over the users who held during its period
-- by time-weighted balance (`loss_allocations`, rounded down per user:
-- what rounding leaves, and the commission-first part, is the platform's)
-- and netted against their later credits (`loss_nettings`, `credits.netted`)
-- until `net_until`; what is not netted by then is the platform's.
-- `allocated_at` is NULL between booking and allocation (a crash there is
-- finished by the next snapshot; no distribution of the chain runs then).
CREATE TABLE pool_losses (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain           TEXT    COLLATE "C" NOT NULL,
    loss_key        TEXT    COLLATE "C" NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('reported', 'recognized')),
    rule            TEXT    NOT NULL CHECK (rule IN ('platform', 'pool', 'users')),
    amount          TEXT    NOT NULL CHECK (amount ~ '^(0|[1-9][0-9]*)$'),
    period_start    BIGINT  NOT NULL,
    period_end      BIGINT  NOT NULL,
    net_until       BIGINT  NOT NULL,
    commission_first BOOLEAN NOT NULL,
    platform_part   TEXT    CHECK (platform_part ~ '^(0|[1-9][0-9]*)$'),
    users_part      TEXT    CHECK (users_part ~ '^(0|[1-9][0-9]*)$'),
    users           BIGINT,
    total_weight    TEXT,
    snapshot_id     BIGINT  NOT NULL REFERENCES pool_snapshots (id),
    booked_at       BIGINT  NOT NULL,
    allocated_at    BIGINT,
    UNIQUE (chain, loss_key)
);

CREATE TABLE loss_allocations (
    loss_id         BIGINT  NOT NULL REFERENCES pool_losses (id),
    user_id         TEXT    COLLATE "C" NOT NULL,
    weight          TEXT    NOT NULL CHECK (weight ~ '^(0|[1-9][0-9]*)$'),
    amount          TEXT    NOT NULL CHECK (amount ~ '^(0|[1-9][0-9]*)$'),
    remaining       TEXT    NOT NULL CHECK (remaining ~ '^(0|[1-9][0-9]*)$'),
    PRIMARY KEY (loss_id, user_id)
);
CREATE INDEX loss_allocations_user ON loss_allocations (user_id, loss_id);
-- The shares still to be netted (what each distribution reads): netted
-- history is not scanned again.
CREATE INDEX loss_allocations_open ON loss_allocations (loss_id, user_id) WHERE remaining <> '0';

CREATE TABLE loss_nettings (
    distribution_id BIGINT  NOT NULL REFERENCES distributions (id),
    loss_id         BIGINT  NOT NULL REFERENCES pool_losses (id),
    user_id         TEXT    COLLATE "C" NOT NULL,
    amount          TEXT    NOT NULL CHECK (amount ~ '^(0|[1-9][0-9]*)$'),
    PRIMARY KEY (distribution_id, loss_id, user_id)
);
CREATE INDEX loss_nettings_loss ON loss_nettings (loss_id, user_id);

-- What of a credit was kept to cover the user's loss shares: the exchange
-- is paid `amount - netted` (never below zero).
ALTER TABLE credits ADD COLUMN netted TEXT NOT NULL DEFAULT '0' CHECK (netted ~ '^(0|[1-9][0-9]*)$');
