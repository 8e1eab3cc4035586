-- At most one active version, whatever two activations race: the second fails and is retried.
CREATE UNIQUE INDEX policy_versions_one_active ON policy_versions (status) WHERE status = 'active'
