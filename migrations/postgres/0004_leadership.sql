-- softstake schema v4 (PostgreSQL). Keep equivalent to ../sqlite/0004_leadership.sql.
-- Leadership terms for fencing: the daemon that takes the advisory leader
-- lock bumps `term` in the same session; every write that acts on a chain
-- then checks, in its own transaction, that the term is still its own
-- (reading the row FOR SHARE, so a new leader's bump waits for it) and
-- that its lock session still holds the lock, so a deposed leader's writes
-- fail.
CREATE TABLE leadership (
    id          INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    term        BIGINT  NOT NULL CHECK (term >= 0),
    holder      TEXT    NOT NULL,
    acquired_at BIGINT  NOT NULL
);
INSERT INTO leadership (id, term, holder, acquired_at) VALUES (1, 0, '', 0);
