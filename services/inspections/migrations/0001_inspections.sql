-- Inspections with their findings, self-inspection items and documents.
-- Deductions and credits are canonical decimal TEXT; times unix ms.

CREATE TABLE inspections (
    cycle_id TEXT NOT NULL,
    id TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    kind BIGINT NOT NULL,
    inspect_ms BIGINT NOT NULL,
    inspectors TEXT NOT NULL,
    place TEXT NOT NULL,
    notes TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    create_ms BIGINT NOT NULL,
    PRIMARY KEY (cycle_id, id)
);

CREATE INDEX inspections_unit ON inspections (cycle_id, unit_id);

CREATE TABLE findings (
    cycle_id TEXT NOT NULL,
    inspection_id TEXT NOT NULL,
    id TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    category TEXT NOT NULL,
    description TEXT NOT NULL,
    evidence BYTEA NOT NULL,
    deduction TEXT NOT NULL,
    state BIGINT NOT NULL,
    contest_reason TEXT NOT NULL,
    decision_note TEXT NOT NULL,
    rect_due_ms BIGINT,
    rect_state BIGINT NOT NULL,
    rect_report TEXT NOT NULL,
    rect_evidence BYTEA NOT NULL,
    PRIMARY KEY (cycle_id, inspection_id, id),
    FOREIGN KEY (cycle_id, inspection_id) REFERENCES inspections (cycle_id, id)
);

CREATE INDEX findings_group ON findings (cycle_id, group_id);

CREATE TABLE self_items (
    cycle_id TEXT NOT NULL,
    id TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    item_type TEXT NOT NULL,
    problem TEXT NOT NULL,
    action_taken TEXT NOT NULL,
    staff_actions TEXT NOT NULL,
    state BIGINT NOT NULL,
    credit TEXT NOT NULL,
    note TEXT NOT NULL,
    create_ms BIGINT NOT NULL,
    PRIMARY KEY (cycle_id, id)
);

CREATE INDEX self_items_group ON self_items (cycle_id, group_id);

CREATE TABLE documents (
    cycle_id TEXT NOT NULL,
    id TEXT NOT NULL,
    kind BIGINT NOT NULL,
    unit_id TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    findings TEXT NOT NULL,
    issue_ms BIGINT NOT NULL,
    PRIMARY KEY (cycle_id, id)
);
