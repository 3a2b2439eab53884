-- HL7 sender claims: a short lease instead of a row lock held across network I/O.
-- A sender sets claimed_by/claimed_until in a short transaction (FOR UPDATE SKIP LOCKED), sends
-- without holding a transaction, then records the outcome only while it still owns the lease.
-- A crashed sender's lease simply expires and the message is resent with the same bytes/MSH-10.
ALTER TABLE hl7_messages
    ADD COLUMN claimed_by    text,
    ADD COLUMN claimed_until timestamptz;
