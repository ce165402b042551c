-- The inbox (every command id seen, with its outcome) and the outbox (every
-- event to publish), both written in the same transaction as the order.
-- depends: 0002_orders

CREATE TABLE processed_commands (
    command_id     uuid PRIMARY KEY,
    command_type   text NOT NULL,
    order_number   text NOT NULL,
    outcome        text NOT NULL CHECK (outcome IN ('applied', 'unchanged', 'duplicate', 'rejected')),
    reason         text,
    detail         text,
    -- Hash of the command body: the same id arriving with other content is a
    -- producer bug and is dead-lettered rather than silently dropped.
    fingerprint    text NOT NULL,
    correlation_id text,
    message_id     text,
    processed_at   timestamptz NOT NULL,
    deliveries     integer NOT NULL DEFAULT 1,
    last_seen_at   timestamptz NOT NULL,
    CHECK ((outcome = 'rejected') = (reason IS NOT NULL))
);

CREATE INDEX processed_commands_order ON processed_commands (order_number, processed_at);

CREATE TABLE outbox (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id       uuid NOT NULL UNIQUE,
    routing_key    text NOT NULL,
    message_type   text NOT NULL,
    payload        jsonb NOT NULL,
    order_number   text NOT NULL,
    command_id     uuid NOT NULL,
    correlation_id text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    published_at   timestamptz
);

-- The relay reads only what is still to be sent, in id order.
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_order ON outbox (order_number, id);
