-- Orders, their lines, and the append-only audit trail of every status change.
-- depends: 0001_workflow

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE orders (
    order_number         text PRIMARY KEY CHECK (length(order_number) BETWEEN 1 AND 64),
    customer_id          text NOT NULL,
    customer_name        text NOT NULL,
    customer_type        text NOT NULL,
    -- Unconstrained numeric keeps the scale as sent (20000.00 stays 20000.00);
    -- the check keeps it within what the contract can carry.
    amount               numeric NOT NULL
                         CHECK (amount >= 0 AND amount < 1e14 AND scale(amount) <= 4),
    currency             char(3) NOT NULL,
    order_date           date NOT NULL,
    status               text NOT NULL REFERENCES order_statuses (code),
    version              integer NOT NULL CHECK (version >= 1),
    -- Hash of the CreateOrder content, so a repeated registration can be told
    -- apart from a conflicting one (duplicate vs duplicate_order).
    creation_fingerprint text NOT NULL,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL
);

-- The searches a CRM order list offers: by status (newest first), by date
-- range, and by parts of the customer name or the order number.
CREATE INDEX orders_status_date ON orders (status, order_date DESC);
CREATE INDEX orders_order_date ON orders (order_date DESC);
CREATE INDEX orders_customer_name_trgm ON orders USING gin (lower(customer_name) gin_trgm_ops);
CREATE INDEX orders_order_number_trgm ON orders USING gin (lower(order_number) gin_trgm_ops);
CREATE INDEX orders_customer_id ON orders (customer_id);

CREATE TABLE order_lines (
    order_number text NOT NULL REFERENCES orders (order_number),
    line_no      integer NOT NULL,
    sku          text NOT NULL,
    name         text NOT NULL,
    quantity     integer NOT NULL CHECK (quantity > 0),
    unit_price   numeric NOT NULL
                 CHECK (unit_price >= 0 AND unit_price < 1e14 AND scale(unit_price) <= 4),
    PRIMARY KEY (order_number, line_no)
);

CREATE TABLE order_status_history (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_number   text NOT NULL REFERENCES orders (order_number),
    from_status    text REFERENCES order_statuses (code),  -- NULL for the registration
    to_status      text NOT NULL REFERENCES order_statuses (code),
    version        integer NOT NULL,
    actor          text NOT NULL,
    reason         text,
    changed_at     timestamptz NOT NULL,
    command_id     uuid NOT NULL,
    correlation_id text,
    -- One row per version: a second row for the same change cannot exist.
    UNIQUE (order_number, version)
);

CREATE INDEX order_status_history_command ON order_status_history (command_id);

CREATE FUNCTION refuse_history_rewrite() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'order_status_history is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER order_status_history_append_only
    BEFORE UPDATE OR DELETE ON order_status_history
    FOR EACH ROW EXECUTE FUNCTION refuse_history_rewrite();

CREATE TRIGGER order_status_history_no_truncate
    BEFORE TRUNCATE ON order_status_history
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_history_rewrite();
