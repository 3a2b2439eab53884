-- Least privilege that really runs. Services no longer migrate (`iari migrate`, as the owner,
-- does), so their logins need no ownership; they only check the schema's version, which needs
-- the migrations table.
-- (Conditional only for tools that apply these files without sqlx, which creates the table
-- before the first migration.)
DO $$
BEGIN
    IF to_regclass('_sqlx_migrations') IS NOT NULL THEN
        GRANT SELECT ON _sqlx_migrations TO iari_worker, iari_auditor;
    END IF;
END $$;

-- The HL7 sender changes only the delivery columns of an outbox row: never its decision, review,
-- filler number, control id or result status. Its payload is written once, when first built
-- (payload_once below), so a login holding this grant cannot rewrite what was sent.
REVOKE UPDATE ON hl7_messages FROM iari_worker;
GRANT UPDATE (payload, state, attempts, counted_attempts, next_attempt_at, last_error, ack_code,
    ack_text, acked_at, claimed_by, claimed_until, resend_requested_by)
    ON hl7_messages TO iari_worker;

CREATE FUNCTION hl7_payload_once() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.payload IS NOT NULL AND NEW.payload IS DISTINCT FROM OLD.payload THEN
        RAISE EXCEPTION 'hl7_messages %: a built payload is never changed', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER hl7_messages_payload_once BEFORE UPDATE OF payload ON hl7_messages
    FOR EACH ROW EXECUTE FUNCTION hl7_payload_once();

-- `iari serve` (the workstation and its API) logs in as a member of this role: it reads
-- everything a reviewer sees and writes reviews, signatures, their outbox messages, the worklist,
-- users, sessions, tokens and the sign-in log; it never writes images, captures or decisions,
-- and never changes an outbox row after it is queued.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'iari_workstation') THEN
        CREATE ROLE iari_workstation NOLOGIN;
    END IF;
END $$;
DO $$
BEGIN
    IF to_regclass('_sqlx_migrations') IS NOT NULL THEN
        GRANT SELECT ON _sqlx_migrations TO iari_workstation;
    END IF;
END $$;
GRANT SELECT ON images, captures, decisions, reviews, signatures, auth_events,
    review_queue, hl7_messages, hl7_attempts, hl7_operations, hl7_installation, audit_chain_head,
    users, sessions, api_tokens TO iari_workstation;
GRANT INSERT ON reviews, signatures, auth_events, hl7_messages, review_queue, users, sessions,
    api_tokens, hl7_operations TO iari_workstation;
GRANT DELETE ON review_queue TO iari_workstation;
GRANT UPDATE ON users, sessions, api_tokens TO iari_workstation;
GRANT USAGE, SELECT ON SEQUENCE reviews_id_seq, hl7_messages_id_seq, hl7_control_seq,
    users_id_seq, api_tokens_id_seq, auth_events_id_seq, signatures_id_seq, hl7_operations_id_seq
    TO iari_workstation;
