-- A decision joins at most one case, whichever writer takes it first: in a cluster every node feeds
-- case intake from the same log, and two nodes taking the same decision at once both saw it untaken.
-- The second insert now fails and intake retries, finding the decision taken.
CREATE UNIQUE INDEX case_events_decision_once ON case_events (actor) WHERE kind = 'decision';
