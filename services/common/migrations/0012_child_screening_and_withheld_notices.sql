-- Screening: each child's own screening (DOMAIN "Per child") in the system of record, not
-- only the contact's highest level: one element per child, as Decision.subjects gives it
-- ({subject_id, child_ref, level, outcome, rag, target_agency, rules, ...}; level, outcome
-- and rag are null on a practitioner's decision, which is for every child). Decisions
-- recorded before this migration are filled in from the event kept in payload; any
-- without a payload stay null.
ALTER TABLE decisions ADD COLUMN subjects jsonb;
UPDATE decisions SET subjects = payload -> 'subjects'
    WHERE payload IS NOT NULL AND payload ? 'subjects';

-- Operation Encompass withheld: a restricted police notification (a live investigation
-- holds more than is shared) tells no school and puts nobody on the police desk's list: a
-- school learning of the investigation could tip off a suspect. Each child the scheme
-- would have covered is recorded here instead (once), with the reason, for the hub and
-- the police to see what was not sent.
CREATE TABLE encompass_withheld (
    contact_id       text        NOT NULL,
    subject_id       text        NOT NULL,
    school_urn       text,                   -- the school not told (null: none known)
    reason           text        NOT NULL CHECK (reason IN ('restricted_investigation')),
    police_reference text        NOT NULL,
    force            text        NOT NULL,
    incident_at      timestamptz NOT NULL,
    withheld_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (contact_id, subject_id)
);
