-- A purge records why, next to who and when: a later reader of the store can
-- tell "fixed upstream" from "test data" without asking around.
-- depends: 0007_dead_letter_replayed_from

ALTER TABLE dead_letters ADD COLUMN purge_note text;
