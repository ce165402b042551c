-- The order workflow as data, the one source of truth for every worker:
-- which statuses exist, their labels, and which transitions are allowed
-- (like a Zoho CRM Blueprint). Change it with a new migration, never in code.

CREATE TABLE order_statuses (
    code        text PRIMARY KEY CHECK (code ~ '^[a-z][a-z_]{0,63}$'),
    label_en    text NOT NULL,
    label_zh    text NOT NULL,
    position    integer NOT NULL UNIQUE,
    is_initial  boolean NOT NULL DEFAULT false
);

-- Exactly one status is where new orders start.
CREATE UNIQUE INDEX order_statuses_one_initial ON order_statuses (is_initial) WHERE is_initial;

CREATE TABLE order_status_transitions (
    from_status text NOT NULL REFERENCES order_statuses (code),
    to_status   text NOT NULL REFERENCES order_statuses (code),
    PRIMARY KEY (from_status, to_status),
    CHECK (from_status <> to_status)
);

INSERT INTO order_statuses (code, label_en, label_zh, position, is_initial) VALUES
    ('pending',        'Pending',        '待处理', 1, true),
    ('pending_review', 'Pending review', '待审核', 2, false),
    ('in_progress',    'In progress',    '进行中', 3, false),
    ('processed',      'Processed',      '已处理', 4, false),
    ('completed',      'Completed',      '已完成', 5, false),
    ('cancelled',      'Cancelled',      '已取消', 6, false);

INSERT INTO order_status_transitions (from_status, to_status) VALUES
    ('pending',        'pending_review'),
    ('pending',        'in_progress'),
    ('pending',        'cancelled'),
    ('pending_review', 'pending'),
    ('pending_review', 'in_progress'),
    ('pending_review', 'cancelled'),
    ('in_progress',    'processed'),
    ('in_progress',    'completed'),
    ('in_progress',    'pending'),
    ('in_progress',    'cancelled'),
    ('processed',      'completed'),
    ('processed',      'in_progress'),
    ('completed',      'in_progress'),
    ('cancelled',      'pending');
