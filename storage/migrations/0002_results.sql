-- 0002: per-item samples, benchmark scores and shift results (written by eval/analyse runs).
CREATE TABLE samples (
    run_id        VARCHAR NOT NULL,
    "offset"      BIGINT NOT NULL,        -- byte offset of the line in samples.jsonl
    benchmark     VARCHAR,
    item_id       VARCHAR,
    sample_idx    INTEGER,
    prompt        VARCHAR,
    completion    VARCHAR,
    extracted     VARCHAR,
    verdict       DOUBLE,
    tokens        INTEGER,
    finish_reason VARCHAR,
    flags         VARCHAR[],
    extra         JSON
);

CREATE TABLE scores (
    run_id     VARCHAR NOT NULL,
    model      VARCHAR,
    benchmark  VARCHAR NOT NULL,
    "group"    VARCHAR,
    metric     VARCHAR NOT NULL,
    value      DOUBLE,                    -- percent
    n          INTEGER,
    t          TIMESTAMP
);

CREATE TABLE shift_results (
    run_id     VARCHAR NOT NULL,
    analysis   VARCHAR NOT NULL,          -- pca_shift | token_shift
    benchmark  VARCHAR,
    "group"    VARCHAR,
    layer      INTEGER,
    metric     VARCHAR NOT NULL,
    value      DOUBLE,
    payload    JSON,
    t          TIMESTAMP
);

CREATE VIEW run_summary AS
SELECT r.id, r.experiment, r.name, r.kind, r.state, r.progress, r.started_at, r.finished_at,
       date_diff('second', r.started_at, coalesce(r.finished_at, current_timestamp::TIMESTAMP)) AS seconds,
       r.error
FROM runs r;
