-- Pushed batches whose every response ended up stored (new or a duplicate,
-- none a conflict), by a fingerprint of their campaign and each response's
-- id and content digest in order: a retried push of the same batch is
-- recognised by this one row instead of a look-up of each id.
CREATE TABLE stored_batches (
    campaign TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    responses BIGINT NOT NULL,
    PRIMARY KEY (campaign, fingerprint)
);
