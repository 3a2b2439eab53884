-- HL7 profile Revision 2 (issue 20): control ids that stay unique across a database restore,
-- withdrawal messages, the attempt cap, and operator actions on parked messages (who asked).
-- 0012, not 0008-0011: other branches add 0008 (decisions.shift_score) and 0009 (workstation).

-- MSH-10 used to be 'IARI' + a sequence. A restore rewinds the sequence, so results delivered
-- after the backup would have their control ids issued again, and an LIS that drops duplicate
-- control ids would silently drop new results. Now MSH-10 (20 characters) is
--   'I' + the installation (3 characters, random, made here once)
--       + the epoch: milliseconds since 2020-01-01 UTC when the id is issued (8, base 36)
--       + the sequence modulo 10^8 (8 digits).
-- The epoch comes from the clock, which a restore does not rewind: an id issued after a restore
-- differs in its epoch from every id issued before it, whatever the sequence says. Two ids of
-- one millisecond differ in the sequence. The installation tells two databases apart that send
-- to one LIS (a rebuilt one, a test system next to production).
CREATE TABLE hl7_installation (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    id          text NOT NULL CHECK (id ~ '^[0-9A-Z]{3}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION hl7_base36(n bigint, width integer) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    digits constant text := '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';
    out text := '';
BEGIN
    IF n < 0 THEN
        RAISE EXCEPTION 'hl7_base36: negative %', n;
    END IF;
    LOOP
        out := substr(digits, (n % 36)::integer + 1, 1) || out;
        n := n / 36;
        EXIT WHEN n = 0;
    END LOOP;
    -- lpad would cut a longer value silently: refuse it instead (8 digits last until 2109).
    IF length(out) > width THEN
        RAISE EXCEPTION 'hl7_base36: % needs more than % digits', out, width;
    END IF;
    RETURN lpad(out, width, '0');
END $$;

INSERT INTO hl7_installation (id)
SELECT hl7_base36((random() * (36 ^ 3 - 1))::bigint, 3);

CREATE FUNCTION hl7_control_id() RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT 'I' || (SELECT id FROM hl7_installation)
        || hl7_base36(floor(extract(epoch FROM clock_timestamp()
                                    - timestamptz '2020-01-01 00:00:00+00') * 1000)::bigint, 8)
        || lpad((nextval('hl7_control_seq') % 100000000)::text, 8, '0')
$$;

ALTER TABLE hl7_messages ALTER COLUMN control_id SET DEFAULT hl7_control_id();

-- A withdrawal ('W': a retracted result) is one more message under the decision's filler
-- number, not a review's, so the one-result-per-decision rule no longer covers it.
ALTER TABLE hl7_messages DROP CONSTRAINT hl7_messages_result_status_check;
ALTER TABLE hl7_messages ADD CONSTRAINT hl7_messages_result_status_check
    CHECK (result_status IN ('P', 'F', 'C', 'W'));
DROP INDEX hl7_messages_one_result;
CREATE UNIQUE INDEX hl7_messages_one_result ON hl7_messages (decision_id)
    WHERE review_id IS NULL AND result_status <> 'W';

ALTER TABLE hl7_messages
    -- sends that count toward lis.max_attempts (the LIS refused or left the message
    -- unanswered); connection attempts that never reached it do not count, and a resend an
    -- operator asks for starts the count again
    ADD COLUMN counted_attempts integer NOT NULL DEFAULT 0,
    -- a withdrawal's words for the LIS (NTE)
    ADD COLUMN note text,
    -- who asked for the resend that the next attempt carries out
    ADD COLUMN resend_requested_by text;
ALTER TABLE hl7_attempts ADD COLUMN requested_by text;

-- What operators did to outbox messages (`iari outbox resend` / `park`), append-only.
CREATE TABLE hl7_operations (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id    bigint NOT NULL REFERENCES hl7_messages (id),
    action        text NOT NULL CHECK (action IN ('resend', 'park')),
    -- the person named on the command line, and the operating-system account that ran it
    requested_by  text NOT NULL CHECK (length(btrim(requested_by)) > 0),
    os_user       text NOT NULL,
    reason        text,
    state_before  text NOT NULL,
    at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX hl7_operations_message ON hl7_operations (message_id, id);

CREATE FUNCTION hl7_operations_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'hl7_operations is append-only';
END $$;
CREATE TRIGGER hl7_operations_no_change BEFORE UPDATE OR DELETE ON hl7_operations
    FOR EACH ROW EXECUTE FUNCTION hl7_operations_append_only();

GRANT SELECT ON hl7_installation TO iari_worker, iari_auditor;
GRANT SELECT, INSERT ON hl7_operations TO iari_worker;
GRANT SELECT ON hl7_operations TO iari_auditor;
GRANT USAGE, SELECT ON SEQUENCE hl7_operations_id_seq TO iari_worker;
