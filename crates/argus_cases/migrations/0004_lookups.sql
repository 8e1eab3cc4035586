-- Lookups by subject id alone (an entity's cases, the graph's per-account case) and by a timeline
-- entry's reference (intake takes each decision once, by its event id).
CREATE INDEX cases_subject_id ON cases (subject_id);
CREATE INDEX case_events_actor ON case_events (actor, kind);
