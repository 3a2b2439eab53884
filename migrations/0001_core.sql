-- IARI core schema: images, captures, decisions (append-only, hash-chained), reviews, HL7 outbox.
-- Later migrations add to it; this one is never edited once released.

-- The bytes that were classified, content-addressed, kept for audit and replay.
CREATE TABLE images (
    sha256      bytea PRIMARY KEY CHECK (octet_length(sha256) = 32),
    media_type  text NOT NULL,
    width       integer NOT NULL CHECK (width > 0),
    height      integer NOT NULL CHECK (height > 0),
    bytes       bytea NOT NULL,
    stored_at   timestamptz NOT NULL DEFAULT now()
);

-- Each capture event as received; one row per capture_id.
CREATE TABLE captures (
    capture_id    text PRIMARY KEY,
    image_sha256  bytea NOT NULL REFERENCES images (sha256),
    event         jsonb NOT NULL,
    captured_at   timestamptz NOT NULL,
    analyzer_id   text NOT NULL,
    plate_id      text NOT NULL,
    well          text NOT NULL,
    accession     text NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX captures_accession ON captures (accession);
CREATE INDEX captures_plate_well ON captures (plate_id, well);

-- One chain over decisions and reviews. Appends lock this row, so concurrent writers
-- (several workers) are serialised and the chain stays linear.
CREATE TABLE audit_chain_head (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    seq        bigint NOT NULL,
    hash       bytea NOT NULL
);
INSERT INTO audit_chain_head (seq, hash) VALUES (0, decode(repeat('00', 32), 'hex'));

CREATE TABLE decisions (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    capture_id        text NOT NULL UNIQUE REFERENCES captures (capture_id),
    image_sha256      bytea NOT NULL REFERENCES images (sha256),
    grade             text NOT NULL CHECK (grade IN ('neg', '1+', '2+', '3+', '4+')),
    agreement         real NOT NULL CHECK (agreement >= 0 AND agreement <= 1),
    confidence        real NOT NULL,
    flags             text[] NOT NULL,
    needs_review      boolean NOT NULL,
    ensemble_name     text NOT NULL,
    ensemble_version  text NOT NULL,
    -- [{name, version, sha256, status, probabilities, vote, error}] in manifest order
    models            jsonb NOT NULL,
    -- {onnxruntime_version, provider, requested, fallback_reason, preprocessing}
    runtime           jsonb NOT NULL,
    -- stage timings in milliseconds and the batch size this image was classified in
    timings           jsonb NOT NULL,
    -- {version, build, host, pid}
    worker            jsonb NOT NULL,
    decided_at        timestamptz NOT NULL DEFAULT now(),
    chain_seq         bigint NOT NULL UNIQUE,
    prev_hash         bytea NOT NULL,
    row_hash          bytea NOT NULL
);
CREATE INDEX decisions_decided_at ON decisions (decided_at, id);
CREATE INDEX decisions_grade ON decisions (grade);

CREATE TABLE reviews (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    decision_id  bigint NOT NULL REFERENCES decisions (id),
    grade        text NOT NULL CHECK (grade IN ('neg', '1+', '2+', '3+', '4+')),
    reviewer     text NOT NULL CHECK (length(btrim(reviewer)) > 0),
    comment      text,
    reviewed_at  timestamptz NOT NULL DEFAULT now(),
    chain_seq    bigint NOT NULL UNIQUE,
    prev_hash    bytea NOT NULL,
    row_hash     bytea NOT NULL
);
CREATE INDEX reviews_decision ON reviews (decision_id, id);

-- The canonical text of a chained row: table name, then the chained columns as jsonb (keys in
-- jsonb's fixed order). The column list is fixed here, so a later migration that adds a column
-- does not change the hash of rows already written; chaining a new column means a new version
-- of this function. Times are rendered in UTC and floats in shortest exact form (the trigger
-- and `iari audit verify` both set timezone and extra_float_digits).
CREATE FUNCTION audit_canonical(tbl text, r jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT tbl || ':' || (
        SELECT jsonb_object_agg(k, r -> k)
        FROM unnest(CASE tbl
            WHEN 'decisions' THEN ARRAY['id', 'capture_id', 'image_sha256', 'grade', 'agreement',
                'confidence', 'flags', 'needs_review', 'ensemble_name', 'ensemble_version',
                'models', 'runtime', 'timings', 'worker', 'decided_at', 'chain_seq', 'prev_hash']
            WHEN 'reviews' THEN ARRAY['id', 'decision_id', 'grade', 'reviewer', 'comment',
                'reviewed_at', 'chain_seq', 'prev_hash']
        END) AS k
    )::text
$$;

CREATE FUNCTION audit_chain_append() RETURNS trigger
LANGUAGE plpgsql SET timezone = 'UTC' SET extra_float_digits = 1 AS $$
DECLARE
    head audit_chain_head%ROWTYPE;
BEGIN
    SELECT * INTO head FROM audit_chain_head WHERE singleton FOR UPDATE;
    NEW.chain_seq := head.seq + 1;
    NEW.prev_hash := head.hash;
    NEW.row_hash := '\x'::bytea;
    NEW.row_hash := sha256(head.hash || convert_to(audit_canonical(TG_TABLE_NAME, to_jsonb(NEW)), 'UTF8'));
    UPDATE audit_chain_head SET seq = NEW.chain_seq, hash = NEW.row_hash WHERE singleton;
    RETURN NEW;
END $$;

CREATE FUNCTION refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'table % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER decisions_chain BEFORE INSERT ON decisions
    FOR EACH ROW EXECUTE FUNCTION audit_chain_append();
CREATE TRIGGER reviews_chain BEFORE INSERT ON reviews
    FOR EACH ROW EXECUTE FUNCTION audit_chain_append();

CREATE TRIGGER decisions_append_only BEFORE UPDATE OR DELETE ON decisions
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER decisions_no_truncate BEFORE TRUNCATE ON decisions
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER reviews_append_only BEFORE UPDATE OR DELETE ON reviews
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER reviews_no_truncate BEFORE TRUNCATE ON reviews
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER captures_append_only BEFORE UPDATE OR DELETE ON captures
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER images_append_only BEFORE UPDATE OR DELETE ON images
    FOR EACH ROW EXECUTE FUNCTION refuse_change();

-- HL7 outbox: written in the same transaction as its decision (or review); the sender builds
-- the payload on first claim, stores it, and resends exactly those bytes.
CREATE SEQUENCE hl7_control_seq;
CREATE TABLE hl7_messages (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    decision_id      bigint NOT NULL REFERENCES decisions (id),
    review_id        bigint REFERENCES reviews (id),
    -- ORC-3/OBR-3: all messages about one decision share it and keep their order
    filler_number    text NOT NULL,
    -- MSH-10: unique, at most 20 characters
    control_id       text NOT NULL UNIQUE CHECK (length(control_id) <= 20)
                     DEFAULT 'IARI' || lpad(nextval('hl7_control_seq')::text, 16, '0'),
    -- OBX-11: P preliminary, F final, C corrected
    result_status    text NOT NULL CHECK (result_status IN ('P', 'F', 'C')),
    payload          bytea,
    state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'acked', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    ack_code         text,
    ack_text         text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    acked_at         timestamptz
);
CREATE UNIQUE INDEX hl7_messages_one_result ON hl7_messages (decision_id) WHERE review_id IS NULL;
CREATE UNIQUE INDEX hl7_messages_one_per_review ON hl7_messages (review_id) WHERE review_id IS NOT NULL;
CREATE INDEX hl7_messages_pending ON hl7_messages (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX hl7_messages_filler ON hl7_messages (filler_number, id);

-- Every delivery attempt and what came back.
CREATE TABLE hl7_attempts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id   bigint NOT NULL REFERENCES hl7_messages (id),
    attempt      integer NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL,
    -- acked | error_ae | rejected_ar | config_error | timeout | io_error
    outcome      text NOT NULL,
    ack_code     text,
    ack_text     text,
    error        text,
    UNIQUE (message_id, attempt)
);
