-- The audit log: who changed what, when and why. Each record's hash covers its fields and the hash
-- of the record before it, so rewriting, removing or reordering any record breaks the chain from
-- there on (argus audit verify). Records are only ever inserted.
CREATE TABLE audit (
    seq BIGINT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
