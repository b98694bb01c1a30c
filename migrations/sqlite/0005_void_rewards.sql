-- softstake schema v5 (SQLite). Keep equivalent to ../postgres/0005_void_rewards.sql.
-- A reward recorded by mistake (a wrong manual entry) can be voided before
-- it is distributed: it stays, with when and why, and is never distributed.
ALTER TABLE rewards ADD COLUMN voided_at BIGINT;
ALTER TABLE rewards ADD COLUMN void_reason TEXT;
