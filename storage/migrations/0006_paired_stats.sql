-- 0006: paired statistics of every tuned model against its base, per benchmark (README "Statistics").
-- A model and its base are compared on the items both have (item_verdicts: the mean verdict over an
-- item's samples). The p values need Student's t, which SQL lacks, so the daemon fills
-- `paired_stats` with engine.analysis.stats: before a query that reads it, before `tix ti`, and
-- when it exits, each time only if the items changed since (`paired_stats_source` holds the
-- signature of what the rows were computed from). `tix sql` and a duckdb opened on the file after
-- the daemon exits therefore read the same rows, with no function of tix's needed to read them.
-- Item scores per eval/score run: the mean verdict over an item's samples, the last record of each
-- sample winning (item_verdicts' definition, before it picks a model's newest run). A cache the daemon
-- keeps for paired_stats: a run's rows are recomputed only when its number of sample records changed
-- (`run_items_source`), so new samples of one run do not re-aggregate every run's.
CREATE TABLE run_items (
    run_id     VARCHAR NOT NULL,
    benchmark  VARCHAR NOT NULL,
    item_id    VARCHAR NOT NULL,
    samples    INTEGER,           -- distinct samples of the item
    verdict    DOUBLE             -- mean verdict over them (NULL when none is scored)
);

CREATE TABLE run_items_source (
    run_id     VARCHAR PRIMARY KEY,
    records    BIGINT             -- sample records of the run when its rows were computed
);

CREATE TABLE paired_stats (
    experiment VARCHAR NOT NULL,
    model      VARCHAR NOT NULL,
    base_model VARCHAR NOT NULL,
    method     VARCHAR,
    benchmark  VARCHAR NOT NULL,
    "group"    VARCHAR,
    n          INTEGER,           -- items both models have
    delta      DOUBLE,            -- points: 100 * mean(d), d = model item score - base item score
    se         DOUBLE,            -- points: 100 * sd(d, ddof=1) / sqrt(n), paired, clustered by item
    ci_low     DOUBLE,            -- delta -/+ t(0.975, n - 1) * se
    ci_high    DOUBLE,
    p          DOUBLE,            -- paired t test, two-sided; NULL when every difference is zero
    q          DOUBLE,            -- Benjamini-Hochberg over the experiment's rows that have a p
    "binary"   BOOLEAN,           -- every item one sample with verdict 0 or 1, in both models
    gained     INTEGER,           -- binary: items the model gets right and its base wrong
    lost       INTEGER,           -- binary: the reverse
    mcnemar_p  DOUBLE,            -- binary: McNemar's exact p from gained and lost
    PRIMARY KEY (experiment, model, benchmark)
);

CREATE TABLE paired_stats_source (
    signature   VARCHAR,          -- row counts of the tables the items come from, when computed
    computed_at TIMESTAMP
);

-- Per tuned model and benchmark: the paired difference from its base with its 95 % interval and tests.
CREATE VIEW paired_deltas AS
SELECT experiment, model, base_model, method, benchmark, "group", n, delta, se, ci_low, ci_high, p, q
FROM paired_stats;

-- flip_summary as in 0003, with McNemar's exact p where the items are binary single samples.
CREATE OR REPLACE VIEW flip_summary AS
WITH counted AS (
    SELECT t.experiment, t.model, m.base_model, t.benchmark, count(*) AS items,
           count(*) FILTER (WHERE t.correct AND NOT b.correct) AS gained,
           count(*) FILTER (WHERE b.correct AND NOT t.correct) AS lost,
           count(*) FILTER (WHERE t.correct AND NOT b.correct)
             - count(*) FILTER (WHERE b.correct AND NOT t.correct) AS net,
           list(t.item_id ORDER BY t.item_id) FILTER (WHERE t.correct AND NOT b.correct) AS gained_items,
           list(t.item_id ORDER BY t.item_id) FILTER (WHERE b.correct AND NOT t.correct) AS lost_items
    FROM item_verdicts t
    JOIN models m ON m.experiment = t.experiment AND m.model = t.model
    JOIN item_verdicts b ON b.experiment = t.experiment AND b.model = m.base_model
         AND b.benchmark = t.benchmark AND b.item_id = t.item_id
    GROUP BY ALL
)
SELECT c.*, s.mcnemar_p
FROM counted c
LEFT JOIN paired_stats s ON s.experiment = c.experiment AND s.model = c.model AND s.benchmark = c.benchmark;
