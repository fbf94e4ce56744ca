-- Campaigns, raw survey responses (answers packed as "q1=satisfied;q2=..."),
-- running tallies per unit and category and per unit and question, unit-level
-- results, online votes with the latest vote per voter, mutual ratings and
-- accepted small samples. Value sums are integers in units of 1e-10.

CREATE TABLE campaigns (
    cycle_id TEXT NOT NULL,
    id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    body BYTEA NOT NULL,
    mode BIGINT NOT NULL,
    PRIMARY KEY (cycle_id, id)
);

CREATE TABLE campaign_platforms (
    cycle_id TEXT NOT NULL,
    campaign_id TEXT NOT NULL,
    platform TEXT NOT NULL,
    PRIMARY KEY (cycle_id, campaign_id, platform)
);

CREATE TABLE responses (
    campaign TEXT NOT NULL,
    response_id TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    category TEXT NOT NULL,
    channel BIGINT NOT NULL,
    answer_ms BIGINT NOT NULL,
    answers TEXT NOT NULL,
    digest BIGINT NOT NULL,
    PRIMARY KEY (campaign, response_id)
);

CREATE TABLE survey_tallies (
    campaign TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    category TEXT NOT NULL,
    responses BIGINT NOT NULL,
    value_units BIGINT NOT NULL,
    PRIMARY KEY (campaign, unit_id, category)
);

CREATE TABLE question_tallies (
    campaign TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    question TEXT NOT NULL,
    counted BIGINT NOT NULL,
    value_units BIGINT NOT NULL,
    PRIMARY KEY (campaign, unit_id, question)
);

CREATE TABLE unit_results (
    campaign TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    index_units BIGINT NOT NULL,
    sample_size BIGINT NOT NULL,
    PRIMARY KEY (campaign, unit_id)
);

CREATE TABLE votes (
    campaign TEXT NOT NULL,
    vote_id TEXT NOT NULL,
    voter TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    answer TEXT NOT NULL,
    cast_ms BIGINT NOT NULL,
    PRIMARY KEY (campaign, vote_id)
);

CREATE TABLE latest_votes (
    campaign TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    voter TEXT NOT NULL,
    vote_id TEXT NOT NULL,
    cast_ms BIGINT NOT NULL,
    counted BIGINT NOT NULL,
    value_units BIGINT NOT NULL,
    PRIMARY KEY (campaign, unit_id, voter)
);

CREATE TABLE vote_tallies (
    campaign TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    counted BIGINT NOT NULL,
    value_units BIGINT NOT NULL,
    PRIMARY KEY (campaign, unit_id)
);

CREATE TABLE mutual_ratings (
    cycle_id TEXT NOT NULL,
    rater TEXT NOT NULL,
    ratee TEXT NOT NULL,
    grade TEXT NOT NULL,
    score TEXT NOT NULL,
    value_units BIGINT NOT NULL,
    rate_ms BIGINT NOT NULL,
    PRIMARY KEY (cycle_id, rater, ratee)
);

CREATE INDEX mutual_ratings_ratee ON mutual_ratings (cycle_id, ratee);

CREATE TABLE sample_acceptances (
    campaign TEXT NOT NULL,
    unit_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    accepted_by TEXT NOT NULL,
    accept_ms BIGINT NOT NULL,
    PRIMARY KEY (campaign, unit_id)
);
