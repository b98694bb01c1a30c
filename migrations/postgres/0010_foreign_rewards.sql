-- softstake schema v10 (PostgreSQL). Keep equivalent to ../sqlite/0010_foreign_rewards.sql.
-- Rewards a chain paid the pool in a denomination other than its own coin
-- (crates/store/src/foreign.rs): on the Cosmos Hub, rewards paid to ATOM
-- delegators in IBC denominations. They are not the pool's coin, so they
-- are never distributed as such: each is kept here, once per key, for the
-- treasury to see and dispose of (converted coins come back as a transfer,
-- declared or classified as income by an operator, and are distributed
-- then).
CREATE TABLE foreign_rewards (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain           TEXT    COLLATE "C" NOT NULL,
    reward_key      TEXT    COLLATE "C" NOT NULL,
    denom           TEXT    COLLATE "C" NOT NULL,
    amount          TEXT    NOT NULL CHECK (amount ~ '^[1-9][0-9]*$'),
    validator       TEXT    COLLATE "C" NOT NULL,
    tx_hash         TEXT,
    paid_at         BIGINT  NOT NULL,
    recorded_at     BIGINT  NOT NULL,
    UNIQUE (chain, reward_key)
);
CREATE INDEX foreign_rewards_denom ON foreign_rewards (chain, denom);
