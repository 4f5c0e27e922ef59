-- The council's cases (DOMAIN "Identity and history"): what the council's case management
-- system (Liquidlogic, Mosaic, ...) publishes on mash.inbound.case-status.v1 about each
-- child's early-help, child-in-need, child-protection-plan and looked-after cases.
--
-- One row per case: (case system, the system's own child id, case type), holding the
-- status with the latest `at` (on the same `at`, open wins over closed), so an older event
-- arriving late never overrides a newer one. The row names the event that gave it; a
-- repeated event id is recognised by the inbox (processed_events), a repeat of the
-- recorded status under another id by (at, status) here. No names, dates of birth or
-- addresses: the child is found by subject id or person key (both hashes).
CREATE TABLE council_cases (
    council_case_id text        PRIMARY KEY,
    case_system     text        NOT NULL,
    child_ref       text        NOT NULL,
    case_type       text        NOT NULL CHECK (case_type IN
        ('early_help', 'child_in_need', 'child_protection_plan', 'looked_after')),
    subject_id      text        NOT NULL,
    person_key      text,
    status          text        NOT NULL CHECK (status IN ('open', 'closed')),
    at              timestamptz NOT NULL,
    team            text,
    hub             text,
    event_id        text        NOT NULL,
    recorded_at     timestamptz NOT NULL,
    UNIQUE (case_system, child_ref, case_type)
);
CREATE INDEX council_cases_subject ON council_cases (subject_id);
CREATE INDEX council_cases_person ON council_cases (person_key) WHERE person_key IS NOT NULL;
