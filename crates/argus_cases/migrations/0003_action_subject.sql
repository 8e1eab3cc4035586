-- The account an action is about (labels and list entries of bans), so that an entity's page finds
-- its labels through an index instead of a scan of the outbox.
ALTER TABLE actions ADD COLUMN subject TEXT;
CREATE INDEX actions_subject ON actions (subject, kind);
