-- 0009: flip_summary's counts and item lists kept in a table (issue 27). Computed per call, the
-- pairing of every tuned model's items with its base's took 0.5-2 s at paper scale (1.1M samples,
-- 24 models) on 2 busy cores. The daemon fills `flip_stats` before a query naming `flip` (and when
-- it exits), from `run_items_latest` as 0008's view did, recomputing only the (experiment, model)
-- rows whose runs, or whose base's runs, have new sample records since (`flip_stats_runs`); any
-- other change (runs, links, scores, imports: `flip_stats_source`) recomputes every row.
CREATE TABLE flip_stats (
    experiment   VARCHAR NOT NULL,
    model        VARCHAR NOT NULL,
    base_model   VARCHAR,
    benchmark    VARCHAR NOT NULL,
    items        BIGINT,
    gained       BIGINT,
    lost         BIGINT,
    net          BIGINT,
    gained_items VARCHAR[],
    lost_items   VARCHAR[]
);

CREATE TABLE flip_stats_runs (
    run_id  VARCHAR PRIMARY KEY,
    records BIGINT             -- run_items_source.records when the run's flips were computed
);

CREATE TABLE flip_stats_source (
    signature VARCHAR          -- engine.analysis.paired's signature when flip_stats was computed
);

CREATE OR REPLACE VIEW flip_summary AS
SELECT c.*, s.mcnemar_p
FROM flip_stats c
LEFT JOIN paired_stats s ON s.experiment = c.experiment AND s.model = c.model AND s.benchmark = c.benchmark;
