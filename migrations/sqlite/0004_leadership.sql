-- softstake schema v4 (SQLite). Keep equivalent to ../postgres/0004_leadership.sql.
-- Leadership terms for fencing. On PostgreSQL the daemon that takes the
-- advisory leader lock bumps `term` in the same session; every write that
-- acts on a chain then checks, in its own transaction, that the term is
-- still its own and that its lock session still holds the lock, so a
-- deposed leader's writes fail. SQLite runs one daemon per file (a file
-- lock), so the row is never bumped there; it exists for equivalence.
CREATE TABLE leadership (
    id          INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    term        BIGINT  NOT NULL CHECK (term >= 0),
    holder      TEXT    NOT NULL,
    acquired_at BIGINT  NOT NULL
);
INSERT INTO leadership (id, term, holder, acquired_at) VALUES (1, 0, '', 0);
