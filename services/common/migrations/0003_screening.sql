-- Screening: reproducible decisions (rule-set hash, the decision as emitted), the state of
-- each contact's decisions (effective, held for confirmation, superseded by an override),
-- and the audit of practitioner confirmations and overrides.

ALTER TABLE decisions
    ADD COLUMN rule_set_hash          text,
    -- Key of the contact's events: an override or a released decision is published with it.
    ADD COLUMN subject_key            text,
    -- effective: in force and published; awaiting_confirmation: an automated s47 held by
    -- the confirmation gate (not published); superseded: replaced by an override (kept).
    ADD COLUMN status                 text NOT NULL DEFAULT 'effective'
        CHECK (status IN ('effective', 'awaiting_confirmation', 'superseded')),
    ADD COLUMN supersedes_decision_id text,
    ADD COLUMN practitioner_id        text,
    ADD COLUMN practitioner_agency    text,
    -- When a held decision was released by the confirmations that completed the set.
    ADD COLUMN released_at            timestamptz,
    -- The Decision event exactly as built (published now or later): the routing context an
    -- override copies, and what an inspector reads back.
    ADD COLUMN payload                jsonb;

-- One automated recommendation per contact, whatever rule-set version is running, and at
-- most one decision in force (or held) per contact at any time.
CREATE UNIQUE INDEX decisions_one_automated_per_contact
    ON decisions (contact_id) WHERE source = 'rules';
CREATE UNIQUE INDEX decisions_one_current_per_contact
    ON decisions (contact_id) WHERE status <> 'superseded';

-- Every practitioner decision applied: who, which agency, why, when, and what it did.
-- The reason is the practitioner's own words: it stays here (the system of record) and
-- never goes on a topic, into the audit log's detail or into a log line.
CREATE TABLE practitioner_decisions (
    event_id        text        PRIMARY KEY,  -- the inbound ce_id
    contact_id      text        NOT NULL,
    practitioner_id text        NOT NULL,
    agency          text        NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('confirm', 'override')),
    outcome         text,
    target_agency   text,
    reason          text        NOT NULL,
    decided_at      timestamptz NOT NULL,
    result          text        NOT NULL CHECK (result IN ('confirmed', 'released', 'overridden')),
    -- The decision confirmed or released, or the override this created.
    decision_id     text        NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX practitioner_decisions_contact ON practitioner_decisions (contact_id);
