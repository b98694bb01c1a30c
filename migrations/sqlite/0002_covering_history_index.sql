-- softstake schema v2 (SQLite). Keep equivalent to ../postgres/0002_covering_history_index.sql.
-- Distributions read every user's history (user, time, balance) in order:
-- an index that carries the balance serves that read without visiting the
-- table row by row.
DROP INDEX balance_updates_asset_user_time;
CREATE INDEX balance_updates_asset_user_time ON balance_updates (asset, user_id, effective_at, id, balance);
