-- Intake: identity that follows a child who moves (DOMAIN "Identity and history").
-- person_key is a hash of the normalised given and family name and date of birth (no
-- postcode, no name in clear): another subject with the same key in the same hub is a
-- probable match. Rows recorded before this migration have none and match nothing.
ALTER TABLE contact_children
    ADD COLUMN person_key text,
    ADD COLUMN matched_subject_ids text[] NOT NULL DEFAULT '{}';
CREATE INDEX contact_children_person_key ON contact_children (person_key)
    WHERE person_key IS NOT NULL;

-- What the contract asks intake to keep rather than validate and drop: the DASH score of a
-- police domestic-abuse notification, and a referral's consent or its lawful basis for
-- sharing without it.
ALTER TABLE contacts
    ADD COLUMN dash_score smallint,
    ADD COLUMN consent_obtained boolean,
    ADD COLUMN consent_override_reason text;
