-- softstake schema v3 (SQLite). Keep equivalent to ../postgres/0003_bytewise_identifiers.sql.
-- PostgreSQL's identifier columns now compare byte by byte (COLLATE "C"),
-- which is what SQLite's default BINARY collation already does: nothing
-- changes here, and the two dialects stay at the same version.
SELECT 1;
