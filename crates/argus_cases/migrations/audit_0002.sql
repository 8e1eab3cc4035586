-- Audit retention: records older than the configured retention are deleted from the start of the
-- chain, and the last deleted record's sequence and hash stay here, so that the chain still
-- verifies from there. Only records at or below the newest anchor may be deleted.
CREATE TABLE audit_anchor (
    seq BIGINT PRIMARY KEY,
    hash TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);
