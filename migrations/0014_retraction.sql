-- A signed retraction (audit::retract) puts the decision back on the worklist: the service's
-- login, which takes decisions off it when a review is signed, may now also put one back.
GRANT INSERT ON review_queue TO iari_worker;
