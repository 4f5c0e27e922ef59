-- Foundation: idempotency (inbox), transactional outbox, dead letters, audit, and the
-- first cut of the case record (contacts, decisions, queue items, feedback).

-- Inbox: one row per (service, inbound event id). A second delivery finds its row and
-- has no effect.
CREATE TABLE processed_events (
    service      text        NOT NULL,
    event_id     text        NOT NULL,
    topic        text        NOT NULL,
    "partition"  integer     NOT NULL,
    "offset"     bigint      NOT NULL,
    outcome      text        NOT NULL,   -- applied | duplicate_source | dead_lettered
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, event_id)
);

-- Transactional outbox: business rows and the events they cause commit together; a relay
-- publishes unpublished rows in id order and marks them.
CREATE TABLE outbox (
    id           bigserial   PRIMARY KEY,
    service      text        NOT NULL,
    event_id     text        NOT NULL,
    topic        text        NOT NULL,
    key          bytea,
    value        bytea       NOT NULL,
    headers      jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    UNIQUE (topic, event_id)
);
CREATE INDEX outbox_pending ON outbox (service, id) WHERE published_at IS NULL;

CREATE TABLE dead_letters (
    dead_letter_id text        PRIMARY KEY,
    service        text        NOT NULL,
    original_topic text        NOT NULL,
    "partition"    integer     NOT NULL,
    "offset"       bigint      NOT NULL,
    reason         text        NOT NULL,
    errors         jsonb       NOT NULL,
    at             timestamptz NOT NULL
);

-- Who/what/when for every state change. Details hold ids and codes, never personal data.
CREATE TABLE audit_log (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    service     text        NOT NULL,
    entity_type text        NOT NULL,
    entity_id   text        NOT NULL,
    action      text        NOT NULL,
    actor       text        NOT NULL DEFAULT 'system',
    detail      jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_entity ON audit_log (entity_type, entity_id);

CREATE TABLE contacts (
    contact_id        text        PRIMARY KEY,
    contact_reference text        NOT NULL UNIQUE,
    source_kind       text        NOT NULL,
    source_system     text        NOT NULL,
    source_reference  text        NOT NULL,
    source_event_id   text        NOT NULL,
    agency_id         text        NOT NULL,
    referral_source   text        NOT NULL,
    hub               text        NOT NULL,
    out_of_area       boolean     NOT NULL,
    subject_key       text        NOT NULL,
    received_at       timestamptz NOT NULL,
    recorded_at       timestamptz NOT NULL,
    UNIQUE (source_system, source_reference)
);

CREATE TABLE contact_children (
    contact_id    text NOT NULL REFERENCES contacts (contact_id),
    subject_id    text NOT NULL,
    child_ref     text NOT NULL,
    household_key text,
    PRIMARY KEY (contact_id, subject_id)
);
CREATE INDEX contact_children_subject ON contact_children (subject_id);

-- The inbound bytes exactly as received: the record an inspector can go back to.
CREATE TABLE raw_payloads (
    contact_id text        PRIMARY KEY REFERENCES contacts (contact_id),
    event_id   text        NOT NULL,
    value      bytea       NOT NULL,
    headers    jsonb       NOT NULL,
    stored_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE decisions (
    decision_id      text        PRIMARY KEY,
    contact_id       text        NOT NULL,
    level            smallint    NOT NULL CHECK (level BETWEEN 1 AND 4),
    outcome          text        NOT NULL,
    rag              text        NOT NULL,
    target_agency    text,
    rules            jsonb       NOT NULL,
    rule_set_version text        NOT NULL,
    source           text        NOT NULL,
    hub              text        NOT NULL,
    decided_at       timestamptz NOT NULL
);
CREATE INDEX decisions_contact ON decisions (contact_id);

CREATE TABLE queue_items (
    queue_item_id   text        PRIMARY KEY,
    contact_id      text        NOT NULL,
    decision_id     text        NOT NULL,
    subject_id      text        NOT NULL,
    hub             text        NOT NULL,
    queue           text        NOT NULL,
    outcome         text        NOT NULL,
    rag             text        NOT NULL,
    target_agency   text,
    status          text        NOT NULL,
    deadlines       jsonb       NOT NULL,
    open_case_update boolean    NOT NULL,
    routed_at       timestamptz NOT NULL
);
CREATE INDEX queue_items_open ON queue_items (hub, queue) WHERE status <> 'closed';
CREATE INDEX queue_items_subject ON queue_items (subject_id);

CREATE TABLE feedback (
    feedback_id  text        PRIMARY KEY,
    contact_id   text        NOT NULL,
    kind         text        NOT NULL,
    agency_id    text        NOT NULL,
    audience     text        NOT NULL,
    issued_at    timestamptz NOT NULL,
    UNIQUE (contact_id, kind)
);
