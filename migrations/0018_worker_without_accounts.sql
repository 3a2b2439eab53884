-- The worker (consumer, sender, health) never touches accounts, sessions, tokens, the sign-in log
-- or the worklist, and never signs or reviews: since 0017 `iari serve` has its own role for those.
-- So a worker taken over through its untrusted input cannot read password hashes or session
-- digests, nor sign anything. It still reads reviews and signatures: the sender names the signer
-- in a reviewed result's message. (The worklist is filled by the decisions' SECURITY DEFINER
-- trigger.)
REVOKE ALL ON users, sessions, api_tokens, auth_events, review_queue FROM iari_worker;
REVOKE INSERT ON reviews, signatures FROM iari_worker;
REVOKE USAGE, SELECT ON SEQUENCE users_id_seq, api_tokens_id_seq, auth_events_id_seq,
    signatures_id_seq, reviews_id_seq FROM iari_worker;
