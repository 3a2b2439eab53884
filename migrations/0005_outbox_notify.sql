-- Wakes HL7 senders as soon as outbox rows are committed instead of at their next poll: one
-- NOTIFY per inserting statement (not per row), delivered by PostgreSQL only at commit, so a
-- woken sender always finds the rows. Senders keep polling as the fallback (retries whose
-- next_attempt_at lies ahead, a lost listener connection).
CREATE FUNCTION hl7_outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('iari_outbox', '');
    RETURN NULL;
END $$;

CREATE TRIGGER hl7_messages_notify AFTER INSERT ON hl7_messages
    FOR EACH STATEMENT EXECUTE FUNCTION hl7_outbox_notify();
