-- Stored standings (one encoded jixiao.aggregator.v1.Standings per group,
-- rewritten on each refresh) and the immutable published versions.

CREATE TABLE standings (
    cycle_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    revision BIGINT NOT NULL,
    body BYTEA NOT NULL,
    PRIMARY KEY (cycle_id, group_id)
);

-- `inputs` is the canonical inputs document (see src/inputs.rs); `digest`
-- its SHA-256; `body` the encoded Publication as published.
CREATE TABLE publications (
    cycle_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    year BIGINT NOT NULL,
    digest TEXT NOT NULL,
    inputs TEXT NOT NULL,
    body BYTEA NOT NULL,
    publish_ms BIGINT NOT NULL,
    PRIMARY KEY (cycle_id, group_id, version)
);

-- One row per unit and published version, for the archive.
CREATE TABLE published_rows (
    unit_id TEXT NOT NULL,
    cycle_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    year BIGINT NOT NULL,
    row_body BYTEA NOT NULL,
    PRIMARY KEY (unit_id, cycle_id, group_id, version)
);
