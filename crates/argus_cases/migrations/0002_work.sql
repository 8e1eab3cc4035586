-- P3.3, second part: ring members, tags, the durable outbox of actions, users and sessions, bulk jobs
-- and the intake cursor.
ALTER TABLE cases ADD COLUMN tags TEXT NOT NULL DEFAULT '';

-- The accounts a ring case names (the union of its findings' accounts): a decision about a member
-- joins the ring's open case instead of opening one of its own.
CREATE TABLE case_members (
    case_id TEXT NOT NULL,
    member TEXT NOT NULL,
    PRIMARY KEY (case_id, member)
);
CREATE INDEX case_members_member ON case_members (member);

-- One outbox for every action a verdict or a bulk job takes: labels and list entries into the engine
-- (through the server's own routes' path), and webhooks to the shop's systems. Each has an
-- idempotency key, and a dispatcher delivers pending ones with retries and backoff.
CREATE TABLE actions (
    id TEXT PRIMARY KEY,
    case_id TEXT,
    job_id TEXT,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    last_error TEXT,
    next_at BIGINT NOT NULL,
    idempotency_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    done_at BIGINT
);
CREATE UNIQUE INDEX actions_key ON actions (idempotency_key);
CREATE INDEX actions_due ON actions (status, next_at);
CREATE INDEX actions_case ON actions (case_id);
CREATE INDEX actions_job ON actions (job_id);

CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    disabled BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE bulk_jobs (
    id TEXT PRIMARY KEY,
    by_user TEXT NOT NULL,
    reason TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    total BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

-- How far into the server's event log case intake has got (the log's record number).
CREATE TABLE intake_cursor (
    component TEXT PRIMARY KEY,
    seq BIGINT NOT NULL
);

CREATE INDEX cases_subject ON cases (subject_kind, subject_id);
CREATE INDEX cases_updated ON cases (updated_at);
