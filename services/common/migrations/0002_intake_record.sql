-- Intake's system of record: the children we know, how each was matched, the incident
-- date used for linking, links between contacts about one incident, and the resolution
-- of the address to a hub.

CREATE TABLE children (
    subject_id      text        PRIMARY KEY,
    match_basis     text        NOT NULL CHECK (match_basis IN ('nhs_number', 'demographic', 'sender')),
    first_seen_at   timestamptz NOT NULL,
    last_contact_id text        NOT NULL,
    last_seen_at    timestamptz NOT NULL
);

ALTER TABLE contacts
    ADD COLUMN incident_date      date,
    ADD COLUMN address_unresolved boolean NOT NULL DEFAULT false,
    ADD COLUMN re_referral        boolean NOT NULL DEFAULT false,
    ADD COLUMN open_case          boolean NOT NULL DEFAULT false;

ALTER TABLE contact_children
    ADD COLUMN match_basis text;

CREATE INDEX contact_children_subject_incident ON contact_children (subject_id, contact_id);
CREATE INDEX contacts_incident_date ON contacts (incident_date);

-- Both directions are stored so either contact finds the other.
CREATE TABLE contact_links (
    contact_id        text        NOT NULL REFERENCES contacts (contact_id),
    linked_contact_id text        NOT NULL REFERENCES contacts (contact_id),
    reason            text        NOT NULL,
    linked_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (contact_id, linked_contact_id)
);
