-- Plate quality control (release.md): control wells, the plate's QC state, and withdrawals of
-- a failed plate's results. Owned by `store::plates` (plates) and `store::outbox` (messages).

-- A capture's role on its plate, from its event's `plate.role` (the event itself is chained;
-- this column is what the QC queries and the worklist read). Events stored before this
-- migration had no role: control wells were refused until now.
ALTER TABLE captures ADD COLUMN plate_role text NOT NULL DEFAULT 'patient'
    CHECK (plate_role IN ('patient', 'positive_control', 'negative_control'));
CREATE INDEX captures_plate_role ON captures (plate_id, plate_role);

-- One row per plate seen since QC began. `waiting`: its patient results are held (no outbox row)
-- until `deadline`; `passed`: released to the LIS; `failed`: withheld, and anything sent
-- withdrawn; `missing`: the deadline came first, results went out preliminary. A plate leaves
-- `waiting` once, and only `failed` follows `passed` or `missing` (a control read late).
CREATE TABLE plates (
    plate_id          text PRIMARY KEY,
    qc_state          text NOT NULL DEFAULT 'waiting'
                      CHECK (qc_state IN ('waiting', 'passed', 'failed', 'missing')),
    first_capture_at  timestamptz NOT NULL DEFAULT now(),
    deadline          timestamptz NOT NULL,
    settled_at        timestamptz,
    -- why it settled as it did: the control that failed, or the controls that were missing
    detail            text,
    CHECK ((qc_state = 'waiting') = (settled_at IS NULL))
);
-- What the deadline task scans every second.
CREATE INDEX plates_waiting ON plates (deadline) WHERE qc_state = 'waiting';

-- 'X': a result withdrawn because its plate failed QC (on the wire: `qc.withdraw_status`).
ALTER TABLE hl7_messages DROP CONSTRAINT hl7_messages_result_status_check;
ALTER TABLE hl7_messages ADD CONSTRAINT hl7_messages_result_status_check
    CHECK (result_status IN ('P', 'F', 'C', 'W', 'X'));
DROP INDEX hl7_messages_one_result;
CREATE UNIQUE INDEX hl7_messages_one_result ON hl7_messages (decision_id)
    WHERE review_id IS NULL AND result_status NOT IN ('W', 'X');

-- The worklist holds only what a person can sign: patient results, not control wells, and not
-- results held for their plate's controls (they join when the plate settles) or withheld by a
-- failed plate (re-tested, not signed out).
CREATE OR REPLACE FUNCTION review_queue_enter() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO review_queue (decision_id, queued_at)
        SELECT n.id, n.decided_at FROM new_rows n JOIN captures c ON c.capture_id = n.capture_id
        WHERE n.needs_review AND c.plate_role = 'patient'
          AND NOT EXISTS (SELECT 1 FROM plates p WHERE p.plate_id = c.plate_id
                          AND p.qc_state IN ('waiting', 'failed'));
    RETURN NULL;
END $$;

-- A plate's QC outcome moves its results on the worklist: when it passes, its held results that
-- need review join; when its controls go missing, every result goes out preliminary, so each
-- joins; when it fails, its results leave.
CREATE FUNCTION plate_qc_worklist() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.qc_state = 'failed' THEN
        DELETE FROM review_queue q USING decisions d, captures c
        WHERE q.decision_id = d.id AND c.capture_id = d.capture_id AND c.plate_id = NEW.plate_id;
    ELSIF NEW.qc_state IN ('passed', 'missing') THEN
        INSERT INTO review_queue (decision_id, queued_at)
            SELECT d.id, d.decided_at FROM decisions d
            JOIN captures c ON c.capture_id = d.capture_id
            WHERE c.plate_id = NEW.plate_id AND c.plate_role = 'patient'
              AND (d.needs_review OR NEW.qc_state = 'missing')
              AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.decision_id = d.id)
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION review_queue_enter() SECURITY DEFINER SET search_path = %I, pg_temp',
        current_schema());
    EXECUTE format('ALTER FUNCTION plate_qc_worklist() SECURITY DEFINER SET search_path = %I, pg_temp',
        current_schema());
END $$;
REVOKE ALL ON FUNCTION plate_qc_worklist() FROM PUBLIC;
CREATE TRIGGER plates_qc_worklist AFTER UPDATE OF qc_state ON plates
    FOR EACH ROW WHEN (OLD.qc_state IS DISTINCT FROM NEW.qc_state)
    EXECUTE FUNCTION plate_qc_worklist();

GRANT SELECT, INSERT, UPDATE ON plates TO iari_worker;
GRANT SELECT ON plates TO iari_workstation, iari_auditor;
