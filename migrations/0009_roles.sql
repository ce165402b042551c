-- Least privilege: three group roles, each granted only what its programs do.
-- Login roles (one per deployment or person) are made members of one of them:
--   order_status_worker  the workers and the dead-letter commands: read the
--                        workflow, write orders, the inbox, the outbox, rule
--                        records and the dead-letter store;
--   order_status_reader  reports and `order-status orders/commands`: read
--                        everything but the raw bodies of dead-lettered messages;
--   order_status_api     a front end: read orders, their history, command
--                        outcomes and tasks; nothing else.
-- No role may update, delete or truncate the history (the trigger of 0002 stays
-- as well). Roles belong to the whole cluster, so each is created only if absent
-- (many databases of one cluster run this); the grants belong to this database.
-- A migration that adds a table grants on it in the same file.
-- depends: 0006_history_rule_depth

DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['order_status_worker', 'order_status_reader', 'order_status_api']
    LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- another database of this cluster created it just now
            END;
        END IF;
    END LOOP;
END
$$;

GRANT USAGE ON SCHEMA public TO order_status_worker, order_status_reader, order_status_api;

-- The workers.
GRANT SELECT ON order_statuses, order_status_transitions TO order_status_worker;
GRANT SELECT, INSERT ON orders, order_lines, order_status_history, processed_commands,
    outbox, rule_firings, rule_actions, tasks, dead_letters TO order_status_worker;
GRANT UPDATE (status, version, updated_at) ON orders TO order_status_worker;
GRANT UPDATE (deliveries, last_seen_at) ON processed_commands TO order_status_worker;
GRANT UPDATE (published_at) ON outbox TO order_status_worker;
GRANT UPDATE (state, replay_count, replayed_at, replayed_by, purged_at, purged_by)
    ON dead_letters TO order_status_worker;

-- Readers: everything but dead_letters.body, the message as it was sent.
GRANT SELECT ON order_statuses, order_status_transitions, orders, order_lines,
    order_status_history, processed_commands, outbox, rule_firings, rule_actions, tasks
    TO order_status_reader;
GRANT SELECT (id, fingerprint, reason, detail, source_queue, original_exchange,
    original_routing_key, message_id, correlation_id, message_type, order_number, properties,
    headers, attempts, first_failed_at, last_failed_at, ingested_at, state, replay_count,
    replayed_at, replayed_by, purged_at, purged_by)
    ON dead_letters TO order_status_reader;

-- A front end.
GRANT SELECT ON order_statuses, order_status_transitions, orders, order_lines,
    order_status_history, processed_commands, tasks TO order_status_api;
