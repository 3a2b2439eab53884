-- Every message of one decision, newest last: what a review reads to learn what the LIS holds
-- (store::outbox::standing), and what the decision page and `iari audit show` list. The
-- partial unique index on decision_id covers only a decision's first result, so without this
-- one each of those reads scanned the whole outbox (measured: ~90 ms at 1,000,000 messages).
CREATE INDEX hl7_messages_decision ON hl7_messages (decision_id, id);
