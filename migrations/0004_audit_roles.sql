-- Least-privilege roles for the audit trail. The append-only triggers of 0001 refuse UPDATE and
-- DELETE for everyone, but a table's owner (or a superuser) can disable them; the service should
-- therefore connect as a login role that is a member of `iari_worker`, which can add rows but
-- owns nothing, cannot disable triggers, and cannot touch the chain head except through the
-- insert trigger. `iari_auditor` only reads. Grant them with e.g. `GRANT iari_worker TO iari_app`.

-- Roles are cluster-wide: create them once, tolerating another database (or a concurrent
-- migration) having created them first.
DO $$
BEGIN
    BEGIN
        CREATE ROLE iari_worker NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    BEGIN
        CREATE ROLE iari_auditor NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
END $$;

-- The chain trigger runs with its owner's rights, so writers need no privilege on the head.
-- A fixed search_path keeps a SECURITY DEFINER function from resolving names a caller planted.
DO $$
BEGIN
    EXECUTE format(
        'ALTER FUNCTION audit_chain_append() SECURITY DEFINER SET search_path = %I, pg_temp',
        current_schema());
END $$;
REVOKE ALL ON FUNCTION audit_chain_append() FROM PUBLIC;

REVOKE ALL ON images, captures, decisions, reviews, audit_chain_head, hl7_messages, hl7_attempts
    FROM iari_worker, iari_auditor;

-- Writers: append to the audit tables; the HL7 sender updates delivery state in the outbox.
GRANT SELECT, INSERT ON images, captures, decisions, reviews, hl7_attempts TO iari_worker;
GRANT SELECT, INSERT, UPDATE ON hl7_messages TO iari_worker;
GRANT SELECT ON audit_chain_head TO iari_worker;
GRANT USAGE, SELECT ON SEQUENCE decisions_id_seq, reviews_id_seq, hl7_messages_id_seq,
    hl7_attempts_id_seq, hl7_control_seq TO iari_worker;

-- Auditors (QA, `iari audit` with a read-only login): read everything, change nothing.
GRANT SELECT ON images, captures, decisions, reviews, audit_chain_head, hl7_messages, hl7_attempts
    TO iari_auditor;
