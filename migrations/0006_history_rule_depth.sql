-- Each history row remembers how many rule-caused steps led to the change, so a
-- time-based rule that fires on a stay carries on the depth of the change that
-- began the stay, and the loop guard also stops bounces that go through a stay.
-- Rows written before this migration count as 0 (not caused by a rule).
-- depends: 0004_rules

ALTER TABLE order_status_history
    ADD COLUMN rule_depth integer NOT NULL DEFAULT 0 CHECK (rule_depth >= 0);
