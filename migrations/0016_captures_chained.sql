-- Captures join the hash chain. A decision names its capture by id, and the capture carries the
-- patient, the accession, the well and the event: unchained, an owner could re-point a decision to
-- another patient by rewriting the capture row and `iari audit verify` would not see it.
--
-- Existing captures are appended to the chain here, in the order they were received, so every
-- capture has a place in it; new captures are chained by the insert triggers, like decisions.

ALTER TABLE captures
    ADD COLUMN chain_seq bigint UNIQUE,
    ADD COLUMN prev_hash bytea,
    ADD COLUMN row_hash bytea;

CREATE OR REPLACE FUNCTION audit_canonical(tbl text, r jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT tbl || ':' || (
        SELECT jsonb_object_agg(k, r -> k)
        FROM unnest(CASE tbl
            WHEN 'decisions' THEN ARRAY['id', 'capture_id', 'image_sha256', 'grade', 'agreement',
                'confidence', 'flags', 'needs_review', 'ensemble_name', 'ensemble_version',
                'models', 'runtime', 'timings', 'worker', 'decided_at', 'chain_seq', 'prev_hash',
                'shift_score', 'shift_version']
            WHEN 'reviews' THEN ARRAY['id', 'decision_id', 'grade', 'reviewer', 'comment',
                'reviewed_at', 'chain_seq', 'prev_hash']
            WHEN 'signatures' THEN ARRAY['id', 'decision_id', 'decision_row_hash', 'review_id',
                'user_id', 'username', 'full_name', 'role', 'meaning', 'grade', 'reason_code',
                'reason_text', 'signed_at', 'chain_seq', 'prev_hash']
            WHEN 'auth_events' THEN ARRAY['id', 'at', 'kind', 'username', 'user_id', 'actor',
                'detail', 'chain_seq', 'prev_hash']
            WHEN 'captures' THEN ARRAY['capture_id', 'image_sha256', 'event', 'captured_at',
                'analyzer_id', 'plate_id', 'well', 'accession', 'received_at', 'chain_seq',
                'prev_hash']
        END) AS k
        -- Keys added after rows were chained: present only when not null.
        WHERE k NOT IN ('shift_score', 'shift_version')
           OR coalesce(jsonb_typeof(r -> k), 'null') <> 'null'
    )::text
$$;

ALTER TABLE captures DISABLE TRIGGER captures_append_only;
DO $$
DECLARE
    head audit_chain_head%ROWTYPE;
    r record;
    h bytea;
BEGIN
    -- Settings as the append trigger pins them, for the rows chained here.
    PERFORM set_config('timezone', 'UTC', true);
    PERFORM set_config('extra_float_digits', '1', true);
    SELECT * INTO head FROM audit_chain_head WHERE singleton FOR UPDATE;
    FOR r IN SELECT capture_id FROM captures ORDER BY received_at, capture_id LOOP
        head.seq := head.seq + 1;
        UPDATE captures SET chain_seq = head.seq, prev_hash = head.hash
            WHERE capture_id = r.capture_id;
        SELECT sha256(head.hash || convert_to(audit_canonical('captures', to_jsonb(c)), 'UTF8'))
            INTO h FROM captures c WHERE capture_id = r.capture_id;
        UPDATE captures SET row_hash = h WHERE capture_id = r.capture_id;
        head.hash := h;
    END LOOP;
    UPDATE audit_chain_head SET seq = head.seq, hash = head.hash WHERE singleton;
END $$;
ALTER TABLE captures ENABLE TRIGGER captures_append_only;
ALTER TABLE captures
    ALTER COLUMN chain_seq SET NOT NULL,
    ALTER COLUMN prev_hash SET NOT NULL,
    ALTER COLUMN row_hash SET NOT NULL;

-- As 0008's, plus a direct canonical text for captures (the worker inserts one per decision,
-- so it gets the cheap path decisions have, value for value the key list above).
CREATE OR REPLACE FUNCTION audit_chain_append() RETURNS trigger
LANGUAGE plpgsql SET timezone = 'UTC' SET extra_float_digits = 1 AS $$
DECLARE
    cur text := current_setting('iari.chain_head', true);
BEGIN
    IF cur IS NULL OR cur = '' THEN
        RAISE EXCEPTION 'audit chain head not opened for this statement on %', TG_TABLE_NAME;
    END IF;
    NEW.chain_seq := split_part(cur, ':', 1)::bigint + 1;
    NEW.prev_hash := decode(split_part(cur, ':', 2), 'hex');
    IF TG_TABLE_NAME = 'decisions' THEN
        NEW.row_hash := sha256(NEW.prev_hash || convert_to('decisions:' || (jsonb_build_object(
            'id', NEW.id, 'capture_id', NEW.capture_id, 'image_sha256', NEW.image_sha256,
            'grade', NEW.grade, 'agreement', NEW.agreement, 'confidence', NEW.confidence,
            'flags', NEW.flags, 'needs_review', NEW.needs_review,
            'ensemble_name', NEW.ensemble_name, 'ensemble_version', NEW.ensemble_version,
            'models', NEW.models, 'runtime', NEW.runtime, 'timings', NEW.timings,
            'worker', NEW.worker, 'decided_at', NEW.decided_at, 'chain_seq', NEW.chain_seq,
            'prev_hash', NEW.prev_hash)
            || jsonb_strip_nulls(jsonb_build_object(
                'shift_score', NEW.shift_score, 'shift_version', NEW.shift_version)))::text,
            'UTF8'));
    ELSIF TG_TABLE_NAME = 'captures' THEN
        NEW.row_hash := sha256(NEW.prev_hash || convert_to('captures:' || jsonb_build_object(
            'capture_id', NEW.capture_id, 'image_sha256', NEW.image_sha256, 'event', NEW.event,
            'captured_at', NEW.captured_at, 'analyzer_id', NEW.analyzer_id,
            'plate_id', NEW.plate_id, 'well', NEW.well, 'accession', NEW.accession,
            'received_at', NEW.received_at, 'chain_seq', NEW.chain_seq,
            'prev_hash', NEW.prev_hash)::text, 'UTF8'));
    ELSE
        NEW.row_hash := '\x'::bytea;
        NEW.row_hash := sha256(NEW.prev_hash
            || convert_to(audit_canonical(TG_TABLE_NAME, to_jsonb(NEW)), 'UTF8'));
    END IF;
    PERFORM set_config('iari.chain_head', NEW.chain_seq || ':' || encode(NEW.row_hash, 'hex'), true);
    RETURN NEW;
END $$;
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION audit_chain_append() SECURITY DEFINER SET search_path = %I, pg_temp',
        current_schema());
END $$;
REVOKE ALL ON FUNCTION audit_chain_append() FROM PUBLIC;

CREATE TRIGGER captures_chain_open BEFORE INSERT ON captures
    FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_open();
CREATE TRIGGER captures_chain BEFORE INSERT ON captures
    FOR EACH ROW EXECUTE FUNCTION audit_chain_append();
CREATE TRIGGER captures_chain_close AFTER INSERT ON captures
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_close();
