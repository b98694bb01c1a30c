-- softstake schema v11 (PostgreSQL). Keep equivalent to ../sqlite/0011_operation_attempts.sql.
-- Earlier signed versions of an operation (crates/store/src/journal.rs,
-- `journal_replace`): a transaction the chain refused for its price (the
-- Cosmos Hub's fee market rose after signing) is signed again at the
-- market's price under the same account sequence, so at most one of the
-- versions can ever be included. `operations` holds the newest version;
-- each one it replaced is kept here with its bytes, so that whichever
-- lands is recognised as the operation's (its fee is the operation's, not
-- an incident) and nothing signed is ever forgotten.
CREATE TABLE operation_attempts (
    op_id           TEXT COLLATE "C" NOT NULL REFERENCES operations (id),
    chain           TEXT COLLATE "C" NOT NULL,
    tx_id           TEXT COLLATE "C" NOT NULL,
    signed_bytes    BYTEA    NOT NULL,
    valid_until     BIGINT,
    replaced_at     BIGINT  NOT NULL,
    reason          TEXT    NOT NULL,
    PRIMARY KEY (op_id, tx_id)
);
CREATE INDEX operation_attempts_tx ON operation_attempts (chain, tx_id);
