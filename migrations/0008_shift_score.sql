-- The shift score (issue 18): how far a capture's image lies from the training images, stored
-- with its decision, and the version of the score's definition (`shift-1`). Both are NULL for
-- decisions made before the score existed, or by an ensemble whose manifest has no shift
-- reference; the reference's digest and threshold travel in `runtime.shift`, like the
-- preprocessing version. A score is finite and not negative (NaN and infinity would not survive
-- the canonical JSON of the hash chain).
ALTER TABLE decisions
    ADD COLUMN shift_score double precision,
    ADD COLUMN shift_version text,
    ADD CONSTRAINT decisions_shift_complete CHECK ((shift_score IS NULL) = (shift_version IS NULL)),
    ADD CONSTRAINT decisions_shift_finite CHECK (
        shift_score IS NULL OR (shift_score >= 0 AND shift_score < 'Infinity'::float8));

-- The hash chain covers the new columns only when they hold a value: a row without a score
-- hashes exactly as before (every row chained before this migration still verifies), a row
-- with one cannot have it changed, added or removed unseen. Same rule in both places that
-- build the canonical text: audit_canonical (what `iari audit verify` recomputes) and the
-- insert trigger's direct jsonb_build_object (0006).
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
        END) AS k
        -- Keys added after rows were chained: present only when not null.
        WHERE k NOT IN ('shift_score', 'shift_version')
           OR coalesce(jsonb_typeof(r -> k), 'null') <> 'null'
    )::text
$$;

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
        -- The key list of audit_canonical('decisions', ...), value for value; the shift keys
        -- only when not null (jsonb_strip_nulls drops exactly those: the other values are
        -- scalars or stored JSON, and a key of the fixed list stays even when null).
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
    ELSE
        NEW.row_hash := '\x'::bytea;
        NEW.row_hash := sha256(NEW.prev_hash
            || convert_to(audit_canonical(TG_TABLE_NAME, to_jsonb(NEW)), 'UTF8'));
    END IF;
    PERFORM set_config('iari.chain_head', NEW.chain_seq || ':' || encode(NEW.row_hash, 'hex'), true);
    RETURN NEW;
END $$;

-- As in 0004 and 0006: the trigger runs with its owner's rights and a fixed search_path.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION audit_chain_append() SECURITY DEFINER SET search_path = %I, pg_temp',
        current_schema());
END $$;
REVOKE ALL ON FUNCTION audit_chain_append() FROM PUBLIC;

