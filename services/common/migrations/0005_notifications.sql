-- Notifications: feedback with successive updates, the disclosure audit, Operation
-- Encompass notices and unmatched children, and webhook delivery (an outbox per agency).

-- Feedback: acknowledgement and outcome at most once per contact (sequence 0); updates
-- numbered 1, 2, ... one per change of what the referrer was told.
ALTER TABLE feedback
    ADD COLUMN sequence   integer NOT NULL DEFAULT 0,
    ADD COLUMN outcome    text,
    ADD COLUMN hub        text,
    ADD COLUMN routed_id  text,
    ADD COLUMN decided_at timestamptz,
    ADD COLUMN routed_at  timestamptz;
ALTER TABLE feedback DROP CONSTRAINT feedback_contact_id_kind_key;
ALTER TABLE feedback
    ADD CONSTRAINT feedback_once_per_kind_and_sequence UNIQUE (contact_id, kind, sequence),
    ADD CONSTRAINT feedback_only_updates_are_numbered CHECK ((kind = 'update') = (sequence > 0));

-- Every event that left the hub: who received what (ids and field names, never values),
-- when, through which channel, under which firewall rule and allow-list version.
CREATE TABLE disclosures (
    disclosure_id text        PRIMARY KEY,
    event_id      text        NOT NULL,   -- feedback_id or notice_id
    contact_id    text        NOT NULL,
    channel       text        NOT NULL CHECK (channel IN ('kafka', 'webhook')),
    destination   text        NOT NULL,   -- topic, or the webhook URL without query/userinfo
    recipient     text        NOT NULL,   -- agency id (police: the force) or school URN
    audience      text        NOT NULL,
    rule          text        NOT NULL,   -- e.g. feedback.outcome, operation_encompass
    allow_list    text        NOT NULL,   -- firewall allow-list version
    fields        text[]      NOT NULL,
    disclosed_at  timestamptz NOT NULL
);
CREATE INDEX disclosures_contact ON disclosures (contact_id);
CREATE INDEX disclosures_recipient ON disclosures (recipient, disclosed_at);

-- Operation Encompass notices (ids and times only: the child's details are in the event).
CREATE TABLE encompass_notices (
    notice_id        text        PRIMARY KEY,
    contact_id       text        NOT NULL,
    subject_id       text        NOT NULL,
    school_urn       text        NOT NULL,
    police_reference text        NOT NULL,
    incident_at      timestamptz NOT NULL,
    due_by           timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,            -- when the broker took it (outbox published)
    UNIQUE (contact_id, subject_id)
);
CREATE INDEX encompass_notices_unsent ON encompass_notices (due_by) WHERE sent_at IS NULL;

-- School-age children of police domestic-abuse notifications with no school to notify:
-- the police desk's work list (resolved_at set by whoever follows one up).
CREATE TABLE encompass_unmatched (
    contact_id       text        NOT NULL,
    subject_id       text        NOT NULL,
    reason           text        NOT NULL,   -- no_school_urn | no_name
    police_reference text        NOT NULL,
    force            text        NOT NULL,
    incident_at      timestamptz NOT NULL,
    due_by           timestamptz NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at      timestamptz,
    PRIMARY KEY (contact_id, subject_id)
);
CREATE INDEX encompass_unmatched_open ON encompass_unmatched (due_by) WHERE resolved_at IS NULL;

-- Webhook delivery: one row per (feedback event, agency), written in the transaction that
-- issues the feedback; a background sender delivers, retries and finally dead-letters.
CREATE TABLE webhook_deliveries (
    delivery_id     text        PRIMARY KEY,
    event_id        text        NOT NULL,   -- the feedback_id (the CloudEvent id)
    contact_id      text        NOT NULL,
    agency_id       text        NOT NULL,
    audience        text        NOT NULL,   -- firewall audience the feedback was built for
    ce_source       text        NOT NULL,
    ce_time         timestamptz NOT NULL,
    data            bytea       NOT NULL,   -- the feedback event JSON (already through the firewall)
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'retrying', 'delivered', 'dead_lettered')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,            -- a sender holds it until then (crash: retried)
    last_error      text,                   -- http_503, timeout, connection_error ...
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    UNIQUE (event_id, agency_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status IN ('pending', 'retrying');

-- Every attempt: in_flight when claimed, then delivered | failed; abandoned if the sender
-- died mid-attempt (the delivery is then tried again).
CREATE TABLE webhook_attempts (
    delivery_id  text        NOT NULL REFERENCES webhook_deliveries (delivery_id),
    attempt      integer     NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    result       text        NOT NULL CHECK (result IN ('in_flight', 'delivered', 'failed', 'abandoned')),
    status_code  integer,
    error        text,
    PRIMARY KEY (delivery_id, attempt)
);
