-- softstake schema v12 (PostgreSQL). Keep equivalent to ../sqlite/0012_advances.sql.
-- The treasury's advance line (crates/store/src/advances.rs): a withdrawal
-- the liquid buffer cannot cover is granted at once with the treasury
-- fronting the shortfall, up to the chain's configured limit. Each advance
-- is owed back to the treasury (principal, never income): `outstanding`
-- until the pool's liquidity covers it, then `due` (that liquidity is set
-- aside), then `repaid` when the exchange reports the repayment transfer,
-- which softstake declares as a principal outflow.
CREATE TABLE advances (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    asset         TEXT    COLLATE "C" NOT NULL,
    request_id    TEXT    COLLATE "C" NOT NULL UNIQUE REFERENCES withdrawals (request_id),
    amount        TEXT    NOT NULL CHECK (amount ~ '^[1-9][0-9]*$'),
    status        TEXT    NOT NULL CHECK (status IN ('outstanding', 'due', 'repaid')),
    created_at    BIGINT  NOT NULL,
    expected_at   BIGINT  NOT NULL,
    due_at        BIGINT,
    repaid_at     BIGINT,
    repay_tx_id   TEXT    COLLATE "C"
);
CREATE INDEX advances_open ON advances (asset, status);
-- Where a grant came from: the buffer, the advance line, or the queue.
ALTER TABLE withdrawals ADD COLUMN source TEXT CHECK (source IN ('buffer', 'advance', 'queue'));
