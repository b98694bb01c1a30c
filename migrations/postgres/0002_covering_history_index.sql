-- softstake schema v2 (PostgreSQL). Keep equivalent to ../sqlite/0002_covering_history_index.sql.
-- Distributions read every user's history (user, time, balance) in order:
-- an index that carries the balance serves that read as an index-only scan.
DROP INDEX balance_updates_asset_user_time;
CREATE INDEX balance_updates_asset_user_time ON balance_updates (asset, user_id, effective_at, id) INCLUDE (balance);
