-- One canonical form for every chained table. 0008 (decisions.shift_score, shift_version) and
-- 0009 (signatures, auth_events) were written side by side, and each redefined
-- audit_canonical from 0001's: applied in order, 0009's left out the shift keys that 0008 added
-- (and that the insert trigger hashes). This is both: the shift keys present only when not
-- null (rows chained before 0008 keep their hashes), and the two tables of 0009.
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
        END) AS k
        -- Keys added after rows were chained: present only when not null.
        WHERE k NOT IN ('shift_score', 'shift_version')
           OR coalesce(jsonb_typeof(r -> k), 'null') <> 'null'
    )::text
$$;
