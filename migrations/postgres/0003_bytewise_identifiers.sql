-- softstake schema v3 (PostgreSQL). Keep equivalent to ../sqlite/0003_bytewise_identifiers.sql.
-- Identifiers (event, user, asset, chain and request ids) compare byte by
-- byte, as SQLite's BINARY does and as the split orders users in Rust, not
-- by the server's locale. The order no longer depends on how the cluster
-- was initialised (en_US.UTF-8 and C.UTF-8 order some ids differently), and
-- every index on these columns and every ORDER BY user_id compares with
-- memcmp instead of strcoll (and can use abbreviated sort keys): measured
-- in the README's benchmark. A collation change keeps the column's type,
-- so no table is rewritten; the indexes on the columns are rebuilt.
ALTER TABLE balance_updates
    ALTER COLUMN event_id TYPE TEXT COLLATE "C",
    ALTER COLUMN user_id  TYPE TEXT COLLATE "C",
    ALTER COLUMN asset    TYPE TEXT COLLATE "C";
ALTER TABLE rewards
    ALTER COLUMN chain      TYPE TEXT COLLATE "C",
    ALTER COLUMN reward_key TYPE TEXT COLLATE "C",
    ALTER COLUMN asset      TYPE TEXT COLLATE "C";
ALTER TABLE distributions
    ALTER COLUMN asset TYPE TEXT COLLATE "C";
ALTER TABLE credits
    ALTER COLUMN user_id TYPE TEXT COLLATE "C",
    ALTER COLUMN asset   TYPE TEXT COLLATE "C";
ALTER TABLE withdrawals
    ALTER COLUMN request_id TYPE TEXT COLLATE "C",
    ALTER COLUMN user_id    TYPE TEXT COLLATE "C",
    ALTER COLUMN asset      TYPE TEXT COLLATE "C";
ALTER TABLE operations
    ALTER COLUMN id    TYPE TEXT COLLATE "C",
    ALTER COLUMN chain TYPE TEXT COLLATE "C",
    ALTER COLUMN tx_id TYPE TEXT COLLATE "C";
ALTER TABLE chain_state
    ALTER COLUMN chain TYPE TEXT COLLATE "C";
