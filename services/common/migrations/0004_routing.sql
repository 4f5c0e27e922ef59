-- Routing: queue-item lifecycle, history, statutory deadlines and SLA breaches, and the
-- decisions routing has applied (so a replayed or superseded decision changes nothing).

-- The lifecycle of an item (mash.queue-updates.v1) and where a moved item went.
ALTER TABLE queue_items
    ADD COLUMN status_at        timestamptz,
    ADD COLUMN strategy_outcome text,
    ADD COLUMN closure_reason   text,
    ADD COLUMN replaced_by      text,
    ADD COLUMN updated_at       timestamptz NOT NULL DEFAULT now();

-- One row per change of an item: opened, acknowledged, strategy_discussion_held,
-- assessment_completed, closed, moved, escalated, confirmed. Ids and codes only.
CREATE TABLE queue_item_history (
    seq           bigserial   PRIMARY KEY,   -- order of recording
    history_id    text        NOT NULL UNIQUE, -- derived from the item, action and cause
    queue_item_id text        NOT NULL REFERENCES queue_items (queue_item_id),
    action        text        NOT NULL,
    from_status   text,
    to_status     text        NOT NULL,
    at            timestamptz NOT NULL,      -- when it happened (the update's own time)
    actor         text        NOT NULL,      -- practitioner id, or 'routing'
    detail        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX queue_item_history_item ON queue_item_history (queue_item_id, seq);

-- Every statutory clock of every item. A clock is met by the lifecycle event that
-- answers it (met_at = that event's time), and breached when "now" passes due_at while
-- it was not met by due_at. breached_at is set once, in the transaction that puts the
-- breach event in the outbox: that is what makes the breach event exactly-once.
CREATE TABLE queue_item_deadlines (
    queue_item_id text        NOT NULL REFERENCES queue_items (queue_item_id),
    deadline      text        NOT NULL,
    due_at        timestamptz NOT NULL,
    met_at        timestamptz,
    met_by        text,                     -- the status (or 'moved') that met it
    breached_at   timestamptz,
    breach_id     text        UNIQUE,
    PRIMARY KEY (queue_item_id, deadline)
);
-- What the breach scheduler scans: clocks that can still breach, by due time. A clock met
-- on time leaves the index, so it stays as small as the work still outstanding.
CREATE INDEX queue_item_deadlines_watch ON queue_item_deadlines (due_at)
    WHERE breached_at IS NULL AND (met_at IS NULL OR met_at > due_at);

-- Decisions routing has applied, and which earlier decision each one superseded.
CREATE TABLE routing_decisions (
    decision_id            text        PRIMARY KEY,
    contact_id             text        NOT NULL,
    source                 text        NOT NULL,
    outcome                text        NOT NULL,
    supersedes_decision_id text,
    effect                 text        NOT NULL,   -- routed | superseded
    routed_at              timestamptz NOT NULL
);
CREATE INDEX routing_decisions_supersedes ON routing_decisions (supersedes_decision_id);
CREATE INDEX routing_decisions_contact ON routing_decisions (contact_id);

-- Open items per hub and queue, for ops (psql) and routing's mash_queue_open_items gauge.
CREATE VIEW queue_open_items AS
    SELECT hub, queue, count(*) AS open_items
    FROM queue_items WHERE status <> 'closed'
    GROUP BY hub, queue;
