-- A cheaper hash chain, same hashes. The per-row trigger of 0001 locked, read and rewrote the
-- chain head once per row and built each row's canonical text through to_jsonb(NEW) and an
-- aggregate: it roughly tripled the cost of the worker's 32-row decisions INSERT (pgbench of that
-- statement on these 2 cores: 2.9 ms without a chain, 5.5-6.7 ms with 0001's trigger, 3.9-4.0 ms
-- with this one). Now the head is locked and read once per statement (BEFORE STATEMENT), carried
-- from row to row in a transaction-local setting, and checked and written once (AFTER STATEMENT);
-- a decision's canonical text is built directly with jsonb_build_object over the same fixed column
-- list.
--
-- The canonical text, and so every hash, is unchanged: jsonb orders keys itself and converts
-- each value exactly as to_jsonb does. `iari audit verify` still recomputes every row through
-- audit_canonical(to_jsonb(row)), so it checks this trigger against the original definition.
--
-- Concurrency is unchanged: the head row stays locked FOR UPDATE from the first inserting
-- statement to the end of the transaction, so concurrent writers are serialised as before.

CREATE FUNCTION audit_chain_open() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    head audit_chain_head%ROWTYPE;
BEGIN
    SELECT * INTO head FROM audit_chain_head WHERE singleton FOR UPDATE;
    PERFORM set_config('iari.chain_head', head.seq || ':' || encode(head.hash, 'hex'), true);
    RETURN NULL;
END $$;

-- The setting is only a cache from row to row, and a writer can change settings: so the close
-- takes nothing from it. It checks the statement's rows (its transition table) against the head
-- as it stood when the statement opened (still in the locked row) and moves the head to the last
-- of them. A row trigger fed a forged setting, or a row whose insert was skipped after its
-- trigger ran (ON CONFLICT DO NOTHING), fails the statement instead of breaking the chain.
CREATE FUNCTION audit_chain_close() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    head audit_chain_head%ROWTYPE;
    r record;
    last_seq bigint;
    last_hash bytea;
BEGIN
    SELECT * INTO head FROM audit_chain_head WHERE singleton;
    last_seq := head.seq;
    last_hash := head.hash;
    FOR r IN SELECT chain_seq, prev_hash, row_hash FROM new_rows ORDER BY chain_seq LOOP
        IF r.chain_seq <> last_seq + 1 OR r.prev_hash <> last_hash THEN
            -- A serialization failure: a writer retries its transaction (the worker does).
            RAISE EXCEPTION 'audit chain: % row with chain_seq % does not follow chain_seq %',
                TG_TABLE_NAME, r.chain_seq, last_seq USING ERRCODE = 'serialization_failure';
        END IF;
        last_seq := r.chain_seq;
        last_hash := r.row_hash;
    END LOOP;
    IF last_seq <> head.seq THEN
        UPDATE audit_chain_head SET seq = last_seq, hash = last_hash WHERE singleton;
    END IF;
    PERFORM set_config('iari.chain_head', '', true);
    RETURN NULL;
END $$;

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
        -- The key list of audit_canonical('decisions', ...), value for value.
        NEW.row_hash := sha256(NEW.prev_hash || convert_to('decisions:' || jsonb_build_object(
            'id', NEW.id, 'capture_id', NEW.capture_id, 'image_sha256', NEW.image_sha256,
            'grade', NEW.grade, 'agreement', NEW.agreement, 'confidence', NEW.confidence,
            'flags', NEW.flags, 'needs_review', NEW.needs_review,
            'ensemble_name', NEW.ensemble_name, 'ensemble_version', NEW.ensemble_version,
            'models', NEW.models, 'runtime', NEW.runtime, 'timings', NEW.timings,
            'worker', NEW.worker, 'decided_at', NEW.decided_at, 'chain_seq', NEW.chain_seq,
            'prev_hash', NEW.prev_hash)::text, 'UTF8'));
    ELSE
        NEW.row_hash := '\x'::bytea;
        NEW.row_hash := sha256(NEW.prev_hash
            || convert_to(audit_canonical(TG_TABLE_NAME, to_jsonb(NEW)), 'UTF8'));
    END IF;
    PERFORM set_config('iari.chain_head', NEW.chain_seq || ':' || encode(NEW.row_hash, 'hex'), true);
    RETURN NEW;
END $$;

-- As in 0004: the head is reached only through these owner-rights functions, with a fixed
-- search_path; writers hold no privilege on it.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION audit_chain_open() SECURITY DEFINER SET search_path = %I, pg_temp',
        current_schema());
    EXECUTE format('ALTER FUNCTION audit_chain_close() SECURITY DEFINER SET search_path = %I, pg_temp',
        current_schema());
    EXECUTE format('ALTER FUNCTION audit_chain_append() SECURITY DEFINER SET search_path = %I, pg_temp',
        current_schema());
END $$;
REVOKE ALL ON FUNCTION audit_chain_open(), audit_chain_close(), audit_chain_append() FROM PUBLIC;

CREATE TRIGGER decisions_chain_open BEFORE INSERT ON decisions
    FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_open();
CREATE TRIGGER decisions_chain_close AFTER INSERT ON decisions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_close();
CREATE TRIGGER reviews_chain_open BEFORE INSERT ON reviews
    FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_open();
CREATE TRIGGER reviews_chain_close AFTER INSERT ON reviews
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_close();
