-- Survey screening (docs/DATA-QUALITY.md). Counts are of what was
-- received, whatever order it arrived in; `survey_tallies.responses` and
-- `value_units` stay what is counted, so an exclusion moves responses from
-- them to `excluded`.

ALTER TABLE responses ADD COLUMN respondent TEXT NOT NULL DEFAULT '';

-- Per unit and category: straight-lined and late responses with a value,
-- and responses with a value excluded by a resolution.
ALTER TABLE survey_tallies ADD COLUMN straight BIGINT NOT NULL DEFAULT 0;
ALTER TABLE survey_tallies ADD COLUMN late BIGINT NOT NULL DEFAULT 0;
ALTER TABLE survey_tallies ADD COLUMN excluded BIGINT NOT NULL DEFAULT 0;

-- Seconds in which one unit got two or more responses of one batch from
-- one channel (`second` is the answer time in whole seconds).
CREATE TABLE survey_seconds (
    campaign TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    channel BIGINT NOT NULL,
    second BIGINT NOT NULL,
    responses BIGINT NOT NULL,
    PRIMARY KEY (campaign, unit_id, channel, second)
);

-- Responses per respondent key (platforms that supply one).
CREATE TABLE survey_respondents (
    campaign TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    respondent TEXT NOT NULL,
    responses BIGINT NOT NULL,
    PRIMARY KEY (campaign, unit_id, respondent)
);

-- Only repeated keys are read back: the index stays as small as they are.
CREATE INDEX survey_respondents_repeated ON survey_respondents (campaign)
    WHERE responses > 1;

-- Responses refused as answered outside the campaign window.
CREATE TABLE survey_refusals (
    campaign TEXT NOT NULL,
    response_id TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    answer_ms BIGINT NOT NULL,
    PRIMARY KEY (campaign, response_id)
);

-- Responses taken out of the tallies, and by which flag's resolution.
CREATE TABLE survey_exclusions (
    campaign TEXT NOT NULL,
    response_id TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    PRIMARY KEY (campaign, response_id)
);

-- The latest resolution of each flag: it covers `covered` flagged
-- responses; more of them open the flag again.
CREATE TABLE survey_flag_resolutions (
    campaign TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    state BIGINT NOT NULL,
    covered BIGINT NOT NULL,
    reason TEXT NOT NULL,
    resolved_by TEXT NOT NULL,
    resolve_ms BIGINT NOT NULL,
    PRIMARY KEY (campaign, unit_id, kind)
);
