-- The dead-letter store: every message taken off the dead-letter queue, with
-- why it failed, and what operators did about it. Rows are never deleted:
-- purging marks them.
-- depends: 0003_inbox_outbox

CREATE TABLE dead_letters (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- SHA-256 of the message as it sat in the dead-letter queue: the queue
    -- delivering it again after a lost ack finds the row already there.
    fingerprint          text NOT NULL UNIQUE,
    reason               text NOT NULL,
    detail               text,
    source_queue         text,
    original_exchange    text NOT NULL,
    original_routing_key text NOT NULL,
    message_id           text,
    correlation_id       text,
    message_type         text,
    -- The business key, when the body is JSON with an order_number.
    order_number         text,
    -- AMQP properties and headers as JSON; values JSON cannot hold are tagged
    -- ({"$bytes": base64}, {"$datetime": ISO 8601}, {"$decimal": text}).
    properties           jsonb NOT NULL,
    headers              jsonb NOT NULL,
    body                 bytea NOT NULL,
    attempts             integer NOT NULL CHECK (attempts >= 0),
    first_failed_at      timestamptz NOT NULL,
    last_failed_at       timestamptz NOT NULL,
    ingested_at          timestamptz NOT NULL DEFAULT now(),
    state                text NOT NULL DEFAULT 'dead'
                         CHECK (state IN ('dead', 'replayed', 'purged')),
    replay_count         integer NOT NULL DEFAULT 0 CHECK (replay_count >= 0),
    replayed_at          timestamptz,
    replayed_by          text,
    purged_at            timestamptz,
    purged_by            text,
    CHECK ((state = 'replayed') <= (replayed_at IS NOT NULL AND replay_count > 0)),
    CHECK ((state = 'purged') = (purged_at IS NOT NULL AND purged_by IS NOT NULL))
);

CREATE INDEX dead_letters_groups ON dead_letters (reason, source_queue, state);
CREATE INDEX dead_letters_last_failed ON dead_letters (last_failed_at);
CREATE INDEX dead_letters_order ON dead_letters (order_number) WHERE order_number IS NOT NULL;
