-- Cases: one open case per subject (an entity or a ring), with its queue state.
CREATE TABLE cases (
    id TEXT PRIMARY KEY,
    subject_kind TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    status TEXT NOT NULL,
    priority BIGINT NOT NULL,
    inbox TEXT NOT NULL,
    sla_due BIGINT NOT NULL,
    assignee TEXT,
    lock_owner TEXT,
    lock_until BIGINT,
    disposition TEXT,
    opened_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    triggers BIGINT NOT NULL
);
CREATE UNIQUE INDEX cases_open_subject ON cases (subject_kind, subject_id)
    WHERE status <> 'resolved' AND status <> 'closed';
CREATE INDEX cases_queue ON cases (inbox, status, priority, opened_at);

-- The timeline: decisions, findings, notes, claims and verdicts, in order per case.
CREATE TABLE case_events (
    case_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (case_id, seq)
);
