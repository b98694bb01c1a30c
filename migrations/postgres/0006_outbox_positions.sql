-- softstake schema v6 (PostgreSQL). Keep equivalent to ../sqlite/0006_outbox_positions.sql.
-- The outbox is paged by position, not by id. A position is assigned when
-- a distribution's credits are written: max(the largest position so far
-- + 1, the distribution time in Unix seconds x 10^9) + the row's index, so
-- positions only grow, and credits written after a database restore sort
-- after everything published before the loss (the identity sequence would
-- hand out ids the exchange has already seen). Existing rows keep their id
-- as position, so a cursor taken from next_cursor before this migration
-- still pages correctly.
ALTER TABLE credits ADD COLUMN position BIGINT NOT NULL DEFAULT 0;
UPDATE credits SET position = id;
CREATE UNIQUE INDEX credits_position ON credits (position);
