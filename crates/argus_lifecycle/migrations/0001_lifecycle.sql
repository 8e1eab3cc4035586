-- Policy versions: every change is a new row, never edited in place. files is a JSON object from
-- file name to text (policies by file name, value lists as lists/<file>).
CREATE TABLE policy_versions (
    id BIGINT PRIMARY KEY,
    parent BIGINT,
    author TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    status TEXT NOT NULL,
    origin TEXT NOT NULL,
    files TEXT NOT NULL,
    digest TEXT NOT NULL,
    needs_approval TEXT NOT NULL,
    activate_at BIGINT,
    activated_at BIGINT,
    activated_by TEXT,
    emergency TEXT,
    label TEXT NOT NULL
);
CREATE INDEX policy_versions_status ON policy_versions (status, activate_at);
CREATE TABLE version_reviews (
    version BIGINT NOT NULL,
    reviewer TEXT NOT NULL,
    verdict TEXT NOT NULL,
    comment TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (version, reviewer)
);
-- What happened to versions, rollouts, snoozes and pauses: who, when, what, why.
CREATE TABLE lifecycle_events (
    id BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    who TEXT NOT NULL,
    what TEXT NOT NULL,
    version BIGINT,
    details TEXT NOT NULL
);
CREATE TABLE backtests (
    id BIGINT PRIMARY KEY,
    version BIGINT NOT NULL,
    author TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    status TEXT NOT NULL,
    finished_at BIGINT,
    summary TEXT NOT NULL,
    error TEXT NOT NULL
);
CREATE TABLE backtest_changes (
    backtest BIGINT NOT NULL,
    n BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (backtest, n)
);
CREATE TABLE snoozes (
    id BIGINT PRIMARY KEY,
    rule TEXT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    until_ms BIGINT NOT NULL,
    reason TEXT NOT NULL,
    author TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    case_id TEXT,
    removed_at BIGINT,
    removed_by TEXT
);
CREATE TABLE rule_pauses (
    id BIGINT PRIMARY KEY,
    rule TEXT NOT NULL,
    checkpoint TEXT NOT NULL,
    cause TEXT NOT NULL,
    details TEXT NOT NULL,
    paused_at BIGINT NOT NULL,
    case_id TEXT,
    resumed_at BIGINT,
    resumed_by TEXT,
    resume_reason TEXT
);
CREATE TABLE rule_baselines (
    checkpoint TEXT NOT NULL,
    rule TEXT NOT NULL,
    hits BIGINT NOT NULL,
    events BIGINT NOT NULL,
    PRIMARY KEY (checkpoint, rule)
);
CREATE TABLE rollouts (
    id BIGINT PRIMARY KEY,
    version BIGINT NOT NULL,
    basis_points BIGINT NOT NULL,
    salt TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    started_by TEXT NOT NULL,
    ended_at BIGINT,
    ended_by TEXT,
    outcome TEXT
)
