-- A message that fails again after a replay names the entry it was replayed
-- from (its `x-replayed-from` header), so an operator can follow a failure
-- back through every replay to the first one. Entries are never deleted, so
-- the entry named is always there; a header naming no entry is not kept.
-- depends: 0006_history_rule_depth

ALTER TABLE dead_letters
    ADD COLUMN replayed_from bigint REFERENCES dead_letters (id);

CREATE INDEX dead_letters_replayed_from ON dead_letters (replayed_from)
    WHERE replayed_from IS NOT NULL;
