-- 0008: flips from the item scores the daemon keeps (issue 27). `flips` and `flip_summary` read
-- `item_verdicts` twice, and each read ranked every sample record of the workspace by offset and
-- by run: `tix flips` took 3 s at paper scale (1.1M samples). `run_items` (0006) already holds
-- each eval/score run's item scores (its samples' last records, averaged per item), kept current
-- by the daemon before any query naming `run_items`, `paired_` or `flip` (and when it exits), so
-- the flips now read it through `run_items_latest`: the same rows `item_verdicts` gives (each
-- model's newest eval/score run that has the item), from 1 row per item instead of 1 per sample
-- record. Only rows without a benchmark or item id differ: `run_items` has none, and the flips
-- never paired them (a NULL key joins nothing). `item_verdicts` keeps reading the samples
-- themselves (`sample_rows`: the prompt text is not needed), so it is current without the daemon.

CREATE OR REPLACE VIEW item_verdicts AS
WITH latest AS (
    SELECT * FROM sample_rows
    QUALIFY row_number() OVER (PARTITION BY run_id, benchmark, item_id, sample_idx ORDER BY "offset" DESC) = 1
), per_run AS (
    SELECT e.experiment, r.name AS model, s.run_id, r.created_at, s.benchmark, s.item_id,
           count(*) AS samples, avg(s.verdict) AS verdict
    FROM latest s JOIN runs r ON r.id = s.run_id JOIN experiment_runs e ON e.run_id = r.id
    WHERE r.kind IN ('eval', 'score') AND r.name IS NOT NULL
    GROUP BY ALL
)
SELECT experiment, model, run_id, benchmark, item_id, samples, verdict, verdict >= 0.5 AS correct
FROM per_run
QUALIFY row_number() OVER (PARTITION BY experiment, model, benchmark, item_id
                           ORDER BY created_at DESC, run_id DESC) = 1;

-- item_verdicts' rows from run_items. A (model, benchmark) scored by one run (the usual case)
-- takes that run's rows without ranking them; only several runs of one benchmark are ranked.
CREATE VIEW run_items_latest AS
WITH per_run AS (
    SELECT e.experiment, r.name AS model, i.run_id, r.created_at, i.benchmark, i.item_id, i.samples, i.verdict
    FROM run_items i JOIN runs r ON r.id = i.run_id JOIN experiment_runs e ON e.run_id = r.id
    WHERE r.kind IN ('eval', 'score') AND r.name IS NOT NULL
), ranked AS (
    SELECT experiment, model, run_id, benchmark,
           count(*) OVER (PARTITION BY experiment, model, benchmark) AS runs,
           row_number() OVER (PARTITION BY experiment, model, benchmark
                              ORDER BY created_at DESC, run_id DESC) AS recency
    FROM (SELECT DISTINCT experiment, model, run_id, created_at, benchmark FROM per_run)
)
SELECT p.experiment, p.model, p.run_id, p.benchmark, p.item_id, p.samples, p.verdict,
       p.verdict >= 0.5 AS correct
FROM per_run p JOIN ranked k USING (experiment, model, run_id, benchmark) WHERE k.runs = 1
UNION ALL
SELECT p.experiment, p.model, p.run_id, p.benchmark, p.item_id, p.samples, p.verdict,
       p.verdict >= 0.5 AS correct
FROM per_run p JOIN ranked k USING (experiment, model, run_id, benchmark) WHERE k.runs > 1
QUALIFY row_number() OVER (PARTITION BY p.experiment, p.model, p.benchmark, p.item_id ORDER BY k.recency) = 1;

-- As in 0003, from run_items_latest.
CREATE OR REPLACE VIEW flips AS
SELECT t.experiment, t.model, m.base_model, t.benchmark, t.item_id,
       CASE WHEN t.correct THEN 'gained' ELSE 'lost' END AS change,
       b.verdict AS base_verdict, t.verdict AS model_verdict, b.run_id AS base_run, t.run_id AS model_run
FROM run_items_latest t
JOIN models m ON m.experiment = t.experiment AND m.model = t.model
JOIN run_items_latest b ON b.experiment = t.experiment AND b.model = m.base_model
     AND b.benchmark = t.benchmark AND b.item_id = t.item_id
WHERE t.correct <> b.correct;

-- As in 0006, from run_items_latest.
CREATE OR REPLACE VIEW flip_summary AS
WITH counted AS (
    SELECT t.experiment, t.model, m.base_model, t.benchmark, count(*) AS items,
           count(*) FILTER (WHERE t.correct AND NOT b.correct) AS gained,
           count(*) FILTER (WHERE b.correct AND NOT t.correct) AS lost,
           count(*) FILTER (WHERE t.correct AND NOT b.correct)
             - count(*) FILTER (WHERE b.correct AND NOT t.correct) AS net,
           list(t.item_id ORDER BY t.item_id) FILTER (WHERE t.correct AND NOT b.correct) AS gained_items,
           list(t.item_id ORDER BY t.item_id) FILTER (WHERE b.correct AND NOT t.correct) AS lost_items
    FROM run_items_latest t
    JOIN models m ON m.experiment = t.experiment AND m.model = t.model
    JOIN run_items_latest b ON b.experiment = t.experiment AND b.model = m.base_model
         AND b.benchmark = t.benchmark AND b.item_id = t.item_id
    GROUP BY ALL
)
SELECT c.*, s.mcnemar_p
FROM counted c
LEFT JOIN paired_stats s ON s.experiment = c.experiment AND s.model = c.model AND s.benchmark = c.benchmark;

-- run_items took each sample's last scored record (arg_max skips a NULL verdict) where
-- item_verdicts takes its last record, scored or not; the daemon now uses arg_max_null, and every
-- run's rows are recomputed from the samples at its next refresh.
DELETE FROM run_items;
DELETE FROM run_items_source;
DELETE FROM paired_stats_source;
