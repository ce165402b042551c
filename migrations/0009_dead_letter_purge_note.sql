-- A purge records why, next to who and when: a later reader of the store can
-- tell "fixed upstream" from "test data" without asking around.
-- depends: 0005_dead_letters

ALTER TABLE dead_letters ADD COLUMN purge_note text;
