-- The guard's baselines are rebuilt from the event log at start: no table keeps them.
DROP TABLE rule_baselines
