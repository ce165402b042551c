-- The automation rules worker: what each rule did for each event (its firing,
-- with the values its condition saw), what each of its actions became, and
-- the follow-up tasks rules create. The outbox learns to carry messages for
-- other exchanges than the events exchange (commands, notifications).
-- depends: 0003_inbox_outbox

-- One row per (event, rule) that matched, stopped or failed: the primary key is
-- what makes a redelivered event fire nothing twice. Time-based rules use a
-- firing id derived from the order and the version at which it entered the
-- status, so each stay fires once.
CREATE TABLE rule_firings (
    event_id       uuid NOT NULL,
    rule_name      text NOT NULL CHECK (length(rule_name) BETWEEN 1 AND 100),
    order_number   text NOT NULL,
    order_version  integer NOT NULL,
    trigger        text NOT NULL
                   CHECK (trigger IN ('order.created', 'order.status.changed', 'order.stayed')),
    outcome        text NOT NULL CHECK (outcome IN ('fired', 'stopped', 'failed', 'not_matched')),
    reason         text,
    detail         text,
    depth          integer NOT NULL CHECK (depth >= 0),
    facts          jsonb NOT NULL,
    correlation_id text,
    fired_at       timestamptz NOT NULL,
    PRIMARY KEY (event_id, rule_name),
    CHECK ((outcome IN ('stopped', 'failed')) = (reason IS NOT NULL))
);

CREATE INDEX rule_firings_order ON rule_firings (order_number, fired_at);
-- The time scan asks: has this rule already fired for this stay of this order?
CREATE INDEX rule_firings_stay ON rule_firings (rule_name, order_number, order_version);

-- Each action of a firing, in the rule's order. `message_id` is the id of what
-- the action produced (the ChangeOrderStatus command id, the notification id,
-- the task id), derived from (rule, event, position), so a replay cannot make a
-- second one.
CREATE TABLE rule_actions (
    event_id   uuid NOT NULL,
    rule_name  text NOT NULL,
    position   integer NOT NULL CHECK (position >= 1),
    action     text NOT NULL CHECK (action IN ('set_status', 'notify', 'create_task')),
    target     text NOT NULL,
    outcome    text NOT NULL CHECK (outcome IN ('queued', 'skipped', 'failed')),
    reason     text,
    detail     text,
    message_id uuid NOT NULL,
    PRIMARY KEY (event_id, rule_name, position),
    FOREIGN KEY (event_id, rule_name) REFERENCES rule_firings (event_id, rule_name),
    CHECK ((outcome = 'failed') = (reason IS NOT NULL))
);

CREATE INDEX rule_actions_message ON rule_actions (message_id);

CREATE TABLE tasks (
    task_id      uuid PRIMARY KEY,
    order_number text NOT NULL REFERENCES orders (order_number),
    title        text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    assignee     text NOT NULL CHECK (length(assignee) BETWEEN 1 AND 200),
    due_at       timestamptz NOT NULL,
    rule_name    text NOT NULL,
    event_id     uuid NOT NULL,
    created_at   timestamptz NOT NULL,
    completed_at timestamptz
);

CREATE INDEX tasks_order ON tasks (order_number, created_at);
CREATE INDEX tasks_open ON tasks (due_at) WHERE completed_at IS NULL;

-- Which exchange the relay publishes a row to: NULL is the events exchange, as
-- before; 'commands' and 'notifications' carry what rules send. The namespace
-- prefix is added at publish time, from the relay's configuration.
ALTER TABLE outbox ADD COLUMN exchange text
    CHECK (exchange IS NULL OR exchange IN ('commands', 'notifications'));
