-- The health probe's heartbeat: the writer region's probe updates its row every probe
-- interval. On a replica the row's age is the replication lag as a client sees it (plus at
-- most one interval), whether or not the replica still hears from the writer.
CREATE TABLE switchyard_heartbeat (
    region  text        PRIMARY KEY,
    beat_at timestamptz NOT NULL,
    beats   bigint      NOT NULL DEFAULT 1
);
