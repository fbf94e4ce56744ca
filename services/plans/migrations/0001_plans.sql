-- Cycles, units, groups with scheme and framework, plans and their versions,
-- lock exceptions and notices. Decimals live inside the protobuf-encoded
-- scheme, framework and plan content as canonical strings; times are unix
-- milliseconds.

CREATE TABLE cycles (
    id TEXT PRIMARY KEY,
    year BIGINT NOT NULL,
    title TEXT NOT NULL,
    phase BIGINT NOT NULL,
    plan_deadline_ms BIGINT,
    data_deadline_ms BIGINT,
    review_close_ms BIGINT,
    rectification_deadline_ms BIGINT,
    create_ms BIGINT NOT NULL,
    update_ms BIGINT NOT NULL
);

CREATE TABLE units (
    id TEXT PRIMARY KEY,
    name_zh TEXT NOT NULL,
    name_en TEXT NOT NULL,
    kind BIGINT NOT NULL,
    create_ms BIGINT NOT NULL
);

CREATE TABLE peer_groups (
    cycle_id TEXT NOT NULL REFERENCES cycles (id),
    id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    scheme BYTEA NOT NULL,
    scheme_rev BIGINT NOT NULL,
    framework BYTEA,
    framework_ms BIGINT,
    PRIMARY KEY (cycle_id, id)
);

CREATE TABLE group_members (
    cycle_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    unit_id TEXT NOT NULL REFERENCES units (id),
    position BIGINT NOT NULL,
    PRIMARY KEY (cycle_id, unit_id),
    FOREIGN KEY (cycle_id, group_id) REFERENCES peer_groups (cycle_id, id)
);

CREATE TABLE plans (
    cycle_id TEXT NOT NULL,
    unit_id TEXT NOT NULL REFERENCES units (id),
    group_id TEXT NOT NULL,
    state BIGINT NOT NULL,
    content BYTEA NOT NULL,
    version BIGINT NOT NULL,
    approved_version BIGINT NOT NULL,
    amending BIGINT NOT NULL,
    amend_reason TEXT NOT NULL,
    late BIGINT NOT NULL,
    return_reason TEXT NOT NULL,
    revision BIGINT NOT NULL,
    update_ms BIGINT NOT NULL,
    PRIMARY KEY (cycle_id, unit_id),
    FOREIGN KEY (cycle_id, group_id) REFERENCES peer_groups (cycle_id, id)
);

CREATE TABLE plan_versions (
    cycle_id TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    content BYTEA NOT NULL,
    submitted_by TEXT NOT NULL,
    submit_ms BIGINT NOT NULL,
    late BIGINT NOT NULL,
    amendment BIGINT NOT NULL,
    amendment_reason TEXT NOT NULL,
    outcome BIGINT NOT NULL,
    decided_by TEXT NOT NULL,
    decide_ms BIGINT,
    decision_note TEXT NOT NULL,
    PRIMARY KEY (cycle_id, unit_id, version),
    FOREIGN KEY (cycle_id, unit_id) REFERENCES plans (cycle_id, unit_id)
);

CREATE TABLE lock_exceptions (
    cycle_id TEXT NOT NULL REFERENCES cycles (id),
    id TEXT NOT NULL,
    unit_id TEXT NOT NULL REFERENCES units (id),
    scope BIGINT NOT NULL,
    expire_ms BIGINT NOT NULL,
    reason TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    create_ms BIGINT NOT NULL,
    PRIMARY KEY (cycle_id, id)
);

CREATE INDEX lock_exceptions_unit ON lock_exceptions (cycle_id, unit_id, scope, expire_ms);

CREATE TABLE notices (
    cycle_id TEXT NOT NULL REFERENCES cycles (id),
    id TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    author TEXT NOT NULL,
    publish_ms BIGINT NOT NULL,
    PRIMARY KEY (cycle_id, id)
);
