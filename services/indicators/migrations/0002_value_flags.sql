-- Data-quality flags on values (docs/DATA-QUALITY.md), one per value
-- version and kind, with their evidence (JSON list of named figures) and
-- resolution; and the evidence digests of the current versions, to find a
-- file attached to different units' values.

CREATE TABLE value_flags (
    cycle_id TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    indicator TEXT NOT NULL,
    period TEXT NOT NULL,
    version BIGINT NOT NULL,
    kind TEXT NOT NULL,
    group_id TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    severity BIGINT NOT NULL,
    evidence TEXT NOT NULL,
    explanation TEXT NOT NULL,
    state BIGINT NOT NULL,
    raise_ms BIGINT NOT NULL,
    resolved_by TEXT NOT NULL,
    resolve_ms BIGINT NOT NULL,
    resolution_reason TEXT NOT NULL,
    PRIMARY KEY (cycle_id, unit_id, indicator, period, version, kind)
);

CREATE INDEX value_flags_group ON value_flags (cycle_id, group_id, state);

CREATE TABLE value_evidence (
    cycle_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    indicator TEXT NOT NULL,
    period TEXT NOT NULL,
    PRIMARY KEY (cycle_id, sha256, unit_id, indicator, period)
);

CREATE INDEX value_evidence_value ON value_evidence (cycle_id, unit_id, indicator, period);
