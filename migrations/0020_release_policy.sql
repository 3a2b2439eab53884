-- The release policy (release.md). The policy files ever activated, kept by the SHA-256 of their
-- bytes (what the director signed is what runs), and signatures that sign a policy instead of a
-- decision: `policy_activated`, `policy_suspended`, `policy_resumed`. Such a signature has no
-- decision; its `decision_row_hash` holds the SHA-256 of what it signs, the policy file, so the
-- signature sits in the hash chain with the file's hash without a new chained column (the
-- canonical form of signatures is unchanged and no stored hash changes). 0020: 0019 is plate QC.

CREATE TABLE release_policies (
    sha256     bytea PRIMARY KEY CHECK (octet_length(sha256) = 32),
    version    text NOT NULL CHECK (length(version) BETWEEN 1 AND 64),
    name       text NOT NULL,
    body       bytea NOT NULL,
    stored_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (sha256 = sha256(body))
);
CREATE TRIGGER release_policies_append_only BEFORE UPDATE OR DELETE ON release_policies
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER release_policies_no_truncate BEFORE TRUNCATE ON release_policies
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

ALTER TABLE signatures ALTER COLUMN decision_id DROP NOT NULL;
ALTER TABLE signatures DROP CONSTRAINT signatures_meaning_check;
ALTER TABLE signatures ADD CONSTRAINT signatures_meaning_check CHECK (meaning IN ('confirmed',
    'corrected', 'retracted', 'policy_activated', 'policy_suspended', 'policy_resumed'));
-- A policy signature signs a policy and nothing else; every other signature signs a decision.
ALTER TABLE signatures ADD CONSTRAINT signatures_subject CHECK (CASE
    WHEN meaning IN ('policy_activated', 'policy_suspended', 'policy_resumed')
        THEN decision_id IS NULL AND review_id IS NULL AND grade IS NULL
    ELSE decision_id IS NOT NULL END);
-- The policy a signature signs must be stored (generated, so it is not a chained column).
ALTER TABLE signatures ADD COLUMN policy_sha256 bytea GENERATED ALWAYS AS (CASE
    WHEN meaning IN ('policy_activated', 'policy_suspended', 'policy_resumed')
        THEN decision_row_hash END) STORED REFERENCES release_policies (sha256);
CREATE INDEX signatures_policy ON signatures (id) WHERE decision_id IS NULL;

-- Workers read the policy in force; the workstation's login (the signing commands) stores and
-- signs policies; auditors read them.
GRANT SELECT ON release_policies TO iari_worker, iari_workstation, iari_auditor;
GRANT INSERT ON release_policies TO iari_workstation;
