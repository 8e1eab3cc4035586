-- The queue order (priority descending, then SLA, age, id) as indexes, per inbox and status and per
-- inbox alone, so that a page of a million cases is a range read, not a sort.
CREATE INDEX cases_queue_status ON cases (inbox, status, priority DESC, sla_due, opened_at, id);
CREATE INDEX cases_queue_inbox ON cases (inbox, priority DESC, sla_due, opened_at, id);
DROP INDEX cases_queue;
-- A user's claims (the per-user cap) and assigned cases ("next case" takes those first).
CREATE INDEX cases_lock_owner ON cases (lock_owner);
CREATE INDEX cases_assignee ON cases (assignee);
