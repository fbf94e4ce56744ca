-- Every version of every reported value, the current version per value for
-- scoring, and assessed scores. (Change counters per group are a runtime
-- table.)

CREATE TABLE value_versions (
    cycle_id TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    indicator TEXT NOT NULL,
    period TEXT NOT NULL,
    version BIGINT NOT NULL,
    value TEXT NOT NULL,
    evidence BYTEA NOT NULL,
    comment TEXT NOT NULL,
    reported_by TEXT NOT NULL,
    report_ms BIGINT NOT NULL,
    late BIGINT NOT NULL,
    correction_reason TEXT NOT NULL,
    PRIMARY KEY (cycle_id, unit_id, indicator, period, version)
);

CREATE TABLE current_values (
    cycle_id TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    indicator TEXT NOT NULL,
    period TEXT NOT NULL,
    group_id TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    period_kind BIGINT NOT NULL,
    period_index BIGINT NOT NULL,
    version BIGINT NOT NULL,
    value TEXT NOT NULL,
    late BIGINT NOT NULL,
    PRIMARY KEY (cycle_id, unit_id, indicator, period)
);

CREATE INDEX current_values_group ON current_values (cycle_id, group_id);
CREATE INDEX current_values_provider ON current_values (cycle_id, provider_id);

CREATE TABLE assessed_scores (
    cycle_id TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    indicator TEXT NOT NULL,
    group_id TEXT NOT NULL,
    score TEXT NOT NULL,
    justification TEXT NOT NULL,
    assessed_by TEXT NOT NULL,
    assess_ms BIGINT NOT NULL,
    PRIMARY KEY (cycle_id, unit_id, indicator)
);
