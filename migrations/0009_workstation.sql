-- The review workstation (`iari serve`, docs/workstation.md): named users with roles, server-side
-- sessions, per-user API tokens (hashes only), the sign-in log and electronic signatures. The log
-- and the signatures are append-only and join the one hash chain of decisions and reviews; the
-- accounts, sessions and tokens are state, and every change to an account is itself a logged
-- event. 0009 rather than 0008: 0008 is taken by `decisions.shift_score` on another branch.

CREATE TABLE users (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- what a person types to sign in; lower case so two accounts never differ by case only
    username             text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9._-]{1,62}$'),
    -- printed with every signature ("Family, Given" or "Given Family")
    full_name            text NOT NULL CHECK (length(btrim(full_name)) > 0 AND length(full_name) <= 200),
    role                 text NOT NULL
                         CHECK (role IN ('technologist', 'supervisor', 'director', 'auditor', 'admin')),
    -- Argon2id PHC string
    password_hash        text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    -- a password someone else chose (a generated one-time password) must be replaced at sign-in
    must_change_password boolean NOT NULL DEFAULT false,
    disabled             boolean NOT NULL DEFAULT false,
    failed_count         integer NOT NULL DEFAULT 0 CHECK (failed_count >= 0),
    locked_until         timestamptz,
    password_changed_at  timestamptz NOT NULL DEFAULT now(),
    created_at           timestamptz NOT NULL DEFAULT now()
);

-- Server-side sessions: the cookie holds a random id, the table only its SHA-256. The timeouts
-- are copied from the config when the session starts, so a config change affects new sessions.
CREATE TABLE sessions (
    id_hash         bytea PRIMARY KEY CHECK (octet_length(id_hash) = 32),
    user_id         bigint NOT NULL REFERENCES users (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    idle_timeout_s  integer NOT NULL CHECK (idle_timeout_s > 0),
    expires_at      timestamptz NOT NULL,
    ended_at        timestamptz
);
CREATE INDEX sessions_user ON sessions (user_id) WHERE ended_at IS NULL;

-- Per-user bearer tokens for the API, shown once and stored as SHA-256.
CREATE TABLE api_tokens (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users (id),
    token_hash    bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    label         text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

-- Sign-ins, failures, lock-outs, sign-outs, account and role changes: append-only, chained.
CREATE TABLE auth_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    kind         text NOT NULL CHECK (kind IN ('sign_in', 'sign_in_failed', 'locked', 'sign_out',
                     'session_expired', 'signature_failed', 'user_added', 'user_disabled',
                     'user_enabled', 'role_changed', 'password_set', 'token_issued')),
    -- the account concerned (the name as typed when no such account exists)
    username     text NOT NULL,
    user_id      bigint REFERENCES users (id),
    -- who did it: the account's own name, an admin's, or `cli:<os user>`
    actor        text NOT NULL,
    detail       jsonb NOT NULL DEFAULT '{}',
    chain_seq    bigint NOT NULL UNIQUE,
    prev_hash    bytea NOT NULL,
    row_hash     bytea NOT NULL
);
CREATE INDEX auth_events_user ON auth_events (username, id);

-- Electronic signatures (21 CFR Part 11): who (name, printed name and role as they were at that
-- moment), what it means, why, when, and what it signs: the decision and that row's hash. A
-- confirmation or correction also points at the review row it signs.
CREATE TABLE signatures (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    decision_id        bigint NOT NULL REFERENCES decisions (id),
    decision_row_hash  bytea NOT NULL CHECK (octet_length(decision_row_hash) = 32),
    review_id          bigint REFERENCES reviews (id),
    user_id            bigint NOT NULL REFERENCES users (id),
    username           text NOT NULL,
    full_name          text NOT NULL,
    role               text NOT NULL,
    meaning            text NOT NULL
                       CHECK (meaning IN ('confirmed', 'corrected', 'retracted', 'policy_activated')),
    grade              text CHECK (grade IN ('neg', '1+', '2+', '3+', '4+')),
    reason_code        text,
    reason_text        text,
    signed_at          timestamptz NOT NULL DEFAULT now(),
    chain_seq          bigint NOT NULL UNIQUE,
    prev_hash          bytea NOT NULL,
    row_hash           bytea NOT NULL,
    CHECK (meaning NOT IN ('corrected', 'retracted') OR reason_code IS NOT NULL)
);
CREATE INDEX signatures_decision ON signatures (decision_id, id);
CREATE INDEX signatures_review ON signatures (review_id);
CREATE INDEX signatures_username ON signatures (username, id);

-- The chained columns of the two new tables. The branches for decisions and reviews are 0001's,
-- unchanged, so no stored hash changes.
CREATE OR REPLACE FUNCTION audit_canonical(tbl text, r jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT tbl || ':' || (
        SELECT jsonb_object_agg(k, r -> k)
        FROM unnest(CASE tbl
            WHEN 'decisions' THEN ARRAY['id', 'capture_id', 'image_sha256', 'grade', 'agreement',
                'confidence', 'flags', 'needs_review', 'ensemble_name', 'ensemble_version',
                'models', 'runtime', 'timings', 'worker', 'decided_at', 'chain_seq', 'prev_hash']
            WHEN 'reviews' THEN ARRAY['id', 'decision_id', 'grade', 'reviewer', 'comment',
                'reviewed_at', 'chain_seq', 'prev_hash']
            WHEN 'signatures' THEN ARRAY['id', 'decision_id', 'decision_row_hash', 'review_id',
                'user_id', 'username', 'full_name', 'role', 'meaning', 'grade', 'reason_code',
                'reason_text', 'signed_at', 'chain_seq', 'prev_hash']
            WHEN 'auth_events' THEN ARRAY['id', 'at', 'kind', 'username', 'user_id', 'actor',
                'detail', 'chain_seq', 'prev_hash']
        END) AS k
    )::text
$$;

CREATE TRIGGER signatures_chain_open BEFORE INSERT ON signatures
    FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_open();
CREATE TRIGGER signatures_chain BEFORE INSERT ON signatures
    FOR EACH ROW EXECUTE FUNCTION audit_chain_append();
CREATE TRIGGER signatures_chain_close AFTER INSERT ON signatures
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_close();
CREATE TRIGGER auth_events_chain_open BEFORE INSERT ON auth_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_open();
CREATE TRIGGER auth_events_chain BEFORE INSERT ON auth_events
    FOR EACH ROW EXECUTE FUNCTION audit_chain_append();
CREATE TRIGGER auth_events_chain_close AFTER INSERT ON auth_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_close();

CREATE TRIGGER signatures_append_only BEFORE UPDATE OR DELETE ON signatures
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER signatures_no_truncate BEFORE TRUNCATE ON signatures
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER auth_events_append_only BEFORE UPDATE OR DELETE ON auth_events
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER auth_events_no_truncate BEFORE TRUNCATE ON auth_events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- The worklist: decisions that need a person and have no signed review yet. Decisions are
-- append-only, so "awaiting review" cannot be a column of theirs; a scan of all decisions for
-- the ones without a review grows with every reviewed result. This small table holds exactly the
-- open ones: a decision that needs review enters it with the statement that inserts it, and
-- leaves it in the transaction that signs its review.
CREATE TABLE review_queue (
    decision_id  bigint PRIMARY KEY REFERENCES decisions (id),
    queued_at    timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION review_queue_enter() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO review_queue (decision_id, queued_at)
        SELECT id, decided_at FROM new_rows WHERE needs_review;
    RETURN NULL;
END $$;
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION review_queue_enter() SECURITY DEFINER SET search_path = %I, pg_temp',
        current_schema());
END $$;
REVOKE ALL ON FUNCTION review_queue_enter() FROM PUBLIC;
CREATE TRIGGER decisions_review_queue AFTER INSERT ON decisions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION review_queue_enter();

INSERT INTO review_queue (decision_id, queued_at)
    SELECT d.id, d.decided_at FROM decisions d
    WHERE d.needs_review AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.decision_id = d.id);

-- Searches of the workstation's audit page: by MRN (inside the stored event) and by flag.
CREATE INDEX captures_mrn ON captures ((event -> 'patient' ->> 'mrn'));
CREATE INDEX captures_analyzer ON captures (analyzer_id);

-- As 0004: the service's login role is a member of iari_worker, auditors of iari_auditor.
GRANT SELECT, INSERT, UPDATE ON users, sessions, api_tokens TO iari_worker;
GRANT SELECT, INSERT ON auth_events, signatures TO iari_worker;
GRANT SELECT, DELETE ON review_queue TO iari_worker;
GRANT USAGE, SELECT ON SEQUENCE users_id_seq, api_tokens_id_seq, auth_events_id_seq,
    signatures_id_seq TO iari_worker;
GRANT SELECT ON auth_events, signatures, review_queue TO iari_auditor;
GRANT SELECT (id, username, full_name, role, disabled, failed_count, locked_until,
    password_changed_at, created_at) ON users TO iari_auditor;
