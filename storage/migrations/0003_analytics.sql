-- 0003: imported results (published scores, lm-eval output) and the analysis views:
-- models, model_scores, score_deltas, group_scores, ti, item_verdicts, flips, flip_summary,
-- scorer_disagreements, output_health, shift_summary, pca_points, token_shift_top.
--
-- A model belongs to an experiment either through runs (eval/score runs named after the variant;
-- its base model is the experiment's `base`) or through `tix import` (base model as written in
-- the file). Where both name the same model, the imported metadata and scores win: they were
-- given explicitly. Divisions that would be by zero give NULL (engine.metrics gives NaN).

CREATE TABLE imported_models (
    experiment  VARCHAR NOT NULL,
    model       VARCHAR NOT NULL,
    base_model  VARCHAR,              -- NULL: a base model
    method      VARCHAR,              -- as written in the file: base, sft, rl, ...
    source      VARCHAR,              -- the imported file (absolute path)
    position    INTEGER,              -- line of the model's first row: keeps the file's order
    imported_at TIMESTAMP,
    PRIMARY KEY (experiment, model)
);

CREATE TABLE imported_scores (
    experiment  VARCHAR NOT NULL,
    model       VARCHAR NOT NULL,
    benchmark   VARCHAR NOT NULL,
    "group"     VARCHAR NOT NULL,     -- math | other | non
    value       DOUBLE NOT NULL,      -- percent
    metric      VARCHAR,              -- the source's metric name (CSV: score; lm-eval: acc,none ...)
    line        INTEGER,              -- line in the source file (CSV)
    PRIMARY KEY (experiment, model, benchmark)
);

-- Every model of every experiment, with its base model and training method.
CREATE VIEW models AS
WITH run_models AS (
    SELECT DISTINCT e.experiment, r.name AS model
    FROM runs r JOIN experiment_runs e ON e.run_id = r.id
    WHERE r.kind IN ('build', 'train', 'eval', 'score') AND r.name IS NOT NULL
), methods AS (
    SELECT e.experiment, r.name AS model, any_value(json_extract_string(r.params, '$.method')) AS method
    FROM runs r JOIN experiment_runs e ON e.run_id = r.id
    WHERE r.kind = 'train'
    GROUP BY ALL
)
SELECT m.experiment, m.model, CASE WHEN m.model = 'base' THEN NULL ELSE 'base' END AS base_model,
       coalesce(t.method, CASE WHEN m.model = 'base' THEN 'base' END) AS method,
       'runs' AS source, NULL::INTEGER AS position
FROM run_models m LEFT JOIN methods t USING (experiment, model)
WHERE NOT EXISTS (SELECT 1 FROM imported_models i WHERE i.experiment = m.experiment AND i.model = m.model)
UNION ALL
SELECT experiment, model, base_model, method, 'import:' || coalesce(source, '?'), position
FROM imported_models;

-- One accuracy (percent) per experiment, model and benchmark: imported rows first, else the
-- latest `accuracy` score of the model's eval/score runs.
CREATE VIEW model_scores AS
WITH candidates AS (
    SELECT experiment, model, benchmark, "group", value AS score, NULL::INTEGER AS n,
           NULL::VARCHAR AS run_id, 0 AS pref, NULL::TIMESTAMP AS t
    FROM imported_scores
    UNION ALL
    SELECT e.experiment, r.name, s.benchmark, s."group", s.value, s.n, r.id, 1, s.t
    FROM scores s JOIN runs r ON r.id = s.run_id JOIN experiment_runs e ON e.run_id = r.id
    WHERE r.kind IN ('eval', 'score') AND s.metric = 'accuracy' AND s.value IS NOT NULL
      AND NOT isnan(s.value) AND r.name IS NOT NULL
)
SELECT c.experiment, c.model, m.base_model, m.method, c.benchmark, c."group", c.score, c.n, c.run_id,
       CASE WHEN c.pref = 0 THEN 'import' ELSE 'run' END AS source, m.position
FROM candidates c LEFT JOIN models m ON m.experiment = c.experiment AND m.model = c.model
QUALIFY row_number() OVER (PARTITION BY c.experiment, c.model, c.benchmark ORDER BY c.pref, c.t DESC) = 1;

-- A tuned model against its base, per benchmark both have: gain in points, relative gain.
CREATE VIEW score_deltas AS
SELECT t.experiment, t.model, t.base_model, t.method, t.benchmark, t."group",
       b.score AS base_score, t.score, t.score - b.score AS gain,
       CASE WHEN b.score <> 0 THEN (t.score - b.score) / b.score END AS relative
FROM model_scores t
JOIN model_scores b ON b.experiment = t.experiment AND b.model = t.base_model AND b.benchmark = t.benchmark;

-- Group means. A tuned model's means (and its base's) are over the benchmarks both have, as the
-- TI uses them; a base model's over all its benchmarks (base_score, gain: NULL).
CREATE VIEW group_scores AS
SELECT experiment, model, base_model, method, "group", count(*) AS benchmarks,
       avg(base_score) AS base_score, avg(score) AS score, avg(gain) AS gain,
       CASE WHEN bool_and(base_score <> 0) THEN avg(relative) END AS relative_gain
FROM score_deltas
GROUP BY ALL
UNION ALL
SELECT experiment, model, NULL, method, "group", count(*), NULL, avg(score), NULL, NULL
FROM model_scores
WHERE base_model IS NULL
GROUP BY ALL;

-- The Transferability Index (DESIGN.md section 5), v1 and v2 with the pooled sigma (population
-- std of the point gains over every model compared with the same base, per group). Other
-- sigma modes: `tix ti --sigma`. unstable: maths gain < 1 point or maths index <= 0 (or NULL).
CREATE VIEW ti AS
WITH d AS (
    SELECT *,
           stddev_pop(gain) OVER (PARTITION BY experiment, base_model, "group") AS sigma,
           sum(100 - base_score) OVER (PARTITION BY experiment, model, "group") AS weight_sum
    FROM score_deltas
), s AS (
    SELECT *,
           CASE WHEN sigma <> 0 THEN gain / sigma END AS delta,
           CASE WHEN weight_sum > 0 THEN (100 - base_score) / weight_sum END AS weight
    FROM d
), g AS (
    SELECT experiment, model, base_model, method, "group", avg(gain) AS gain, any_value(sigma) AS sigma,
           CASE WHEN bool_and(base_score <> 0) THEN avg(relative) END AS d_v1,
           CASE WHEN bool_and(delta IS NOT NULL AND weight IS NOT NULL)
                THEN sum(weight * sign(delta) * sqrt(abs(delta))) END AS di_v2
    FROM s
    GROUP BY ALL
), p AS (
    SELECT experiment, model, base_model, method,
           any_value(gain) FILTER (WHERE "group" = 'math') AS math_gain,
           any_value(d_v1) FILTER (WHERE "group" = 'math') AS d_math_v1,
           any_value(d_v1) FILTER (WHERE "group" = 'other') AS d_other_v1,
           any_value(d_v1) FILTER (WHERE "group" = 'non') AS d_non_v1,
           any_value(sigma) FILTER (WHERE "group" = 'math') AS sigma_math,
           any_value(sigma) FILTER (WHERE "group" = 'other') AS sigma_other,
           any_value(sigma) FILTER (WHERE "group" = 'non') AS sigma_non,
           any_value(di_v2) FILTER (WHERE "group" = 'math') AS di_math_v2,
           any_value(di_v2) FILTER (WHERE "group" = 'other') AS di_other_v2,
           any_value(di_v2) FILTER (WHERE "group" = 'non') AS di_non_v2
    FROM g
    GROUP BY ALL
)
SELECT experiment, model, base_model, method, math_gain,
       d_math_v1, d_other_v1, d_non_v1,
       100 * d_other_v1 / nullif(d_math_v1, 0) AS ti_other_v1,
       100 * d_non_v1 / nullif(d_math_v1, 0) AS ti_non_v1,
       coalesce(math_gain < 1, false) OR NOT coalesce(d_math_v1 > 0, false) AS unstable_v1,
       sigma_math, sigma_other, sigma_non, di_math_v2, di_other_v2, di_non_v2,
       100 * di_other_v2 / nullif(di_math_v2, 0) AS ti_other_v2,
       100 * di_non_v2 / nullif(di_math_v2, 0) AS ti_non_v2,
       coalesce(math_gain < 1, false) OR NOT coalesce(di_math_v2 > 0, false) AS unstable_v2
FROM p;

-- Per item: the mean verdict over its samples (the last record of each sample wins) in the
-- model's latest eval/score run of the experiment; correct = mean verdict >= 0.5.
CREATE VIEW item_verdicts AS
WITH latest AS (
    SELECT * FROM samples
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

-- Items a tuned model got right and its base wrong (gained), or the other way round (lost).
CREATE VIEW flips AS
SELECT t.experiment, t.model, m.base_model, t.benchmark, t.item_id,
       CASE WHEN t.correct THEN 'gained' ELSE 'lost' END AS change,
       b.verdict AS base_verdict, t.verdict AS model_verdict, b.run_id AS base_run, t.run_id AS model_run
FROM item_verdicts t
JOIN models m ON m.experiment = t.experiment AND m.model = t.model
JOIN item_verdicts b ON b.experiment = t.experiment AND b.model = m.base_model
     AND b.benchmark = t.benchmark AND b.item_id = t.item_id
WHERE t.correct <> b.correct;

-- Per tuned model and benchmark: items compared, gained, lost, net, and the flipped item ids.
CREATE VIEW flip_summary AS
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
GROUP BY ALL;

-- The same output (benchmark, item and identical completion text) scored in two runs of an
-- experiment by different scorers (name or version, from samples.extra) with different verdicts:
-- an eval run against a `tix score --scorer X` run of the same generations, or two score runs.
CREATE VIEW scorer_disagreements AS
WITH scored AS (
    SELECT e.experiment, r.name AS model, s.run_id, s.benchmark, s.item_id, s.sample_idx, s.completion,
           md5(coalesce(s.completion, '')) AS output_hash,
           coalesce(json_extract_string(s.extra, '$.scorer'), '?') AS scorer,
           coalesce(json_extract_string(s.extra, '$.scorer_version'), '') AS scorer_version,
           s.verdict, s.extracted
    FROM samples s JOIN runs r ON r.id = s.run_id JOIN experiment_runs e ON e.run_id = r.id
)
SELECT a.experiment, a.benchmark, a.item_id, a.model AS model_a, a.run_id AS run_a, a.scorer AS scorer_a,
       a.scorer_version AS version_a, a.verdict AS verdict_a, a.extracted AS extracted_a,
       b.model AS model_b, b.run_id AS run_b, b.scorer AS scorer_b, b.scorer_version AS version_b,
       b.verdict AS verdict_b, b.extracted AS extracted_b, a.completion
FROM scored a
JOIN scored b ON a.experiment = b.experiment AND a.benchmark = b.benchmark AND a.item_id = b.item_id
     AND a.output_hash = b.output_hash
     AND (a.scorer < b.scorer OR (a.scorer = b.scorer AND a.scorer_version < b.scorer_version))
WHERE a.verdict IS DISTINCT FROM b.verdict
  AND (a.verdict IS NULL OR b.verdict IS NULL OR abs(a.verdict - b.verdict) > 1e-9);

-- Per run and benchmark (benchmark NULL: the whole run): outputs, the percent with no answer
-- (flag no_answer, or nothing extracted), cut off at the token limit (finish_reason 'length'),
-- with a think block left open (a <think> after the last </think>), and the mean length in tokens.
CREATE VIEW output_health AS
WITH s AS (
    SELECT run_id, benchmark,
           list_contains(coalesce(flags, []), 'no_answer') OR extracted IS NULL
             OR trim(extracted) = '' AS no_answer,
           finish_reason = 'length' OR list_contains(coalesce(flags, []), 'truncated') AS truncated,
           list_contains(coalesce(flags, []), 'unclosed_think')
             OR contains(list_last(string_split(coalesce(completion, ''), '</think>')), '<think>')
             AS unclosed_think,
           tokens
    FROM samples
    QUALIFY row_number() OVER (PARTITION BY run_id, benchmark, item_id, sample_idx ORDER BY "offset" DESC) = 1
)
SELECT s.run_id, any_value(r.experiment) AS experiment, any_value(r.name) AS model,
       any_value(r.kind) AS kind, s.benchmark, count(*) AS outputs,
       100.0 * count(*) FILTER (WHERE s.no_answer) / count(*) AS pct_no_answer,
       100.0 * count(*) FILTER (WHERE s.truncated) / count(*) AS pct_truncated,
       100.0 * count(*) FILTER (WHERE s.unclosed_think) / count(*) AS pct_unclosed_think,
       avg(s.tokens) AS mean_tokens
FROM s JOIN runs r ON r.id = s.run_id
GROUP BY GROUPING SETS ((s.run_id, s.benchmark), (s.run_id));

-- Shift results pivoted: one row per analyse run and benchmark (scope 'benchmark') or group
-- (scope 'group', benchmark NULL) with PCA d and the token-shift metrics; the latest value wins.
CREATE VIEW shift_summary AS
WITH bench_groups AS (
    SELECT benchmark, any_value("group") AS bgroup FROM scores WHERE "group" IS NOT NULL GROUP BY ALL
), shift_rows AS (
    SELECT s.*, CASE WHEN s.benchmark IS NULL THEN 'group' ELSE 'benchmark' END AS scope,
           coalesce(s.benchmark, s."group") AS key
    FROM shift_results s
    WHERE s.layer IS NULL AND (s.benchmark IS NOT NULL OR s."group" IS NOT NULL)
), pivoted AS (
    SELECT run_id, scope, key, any_value(benchmark) AS benchmark, max("group") AS "group",
           arg_max(value, t) FILTER (WHERE analysis = 'pca_shift' AND metric = 'd') AS pca_d,
           arg_max(value, t) FILTER (WHERE analysis = 'token_shift' AND metric = 'logp_diff') AS logp_diff,
           arg_max(value, t) FILTER (WHERE analysis = 'token_shift' AND metric = 'kl') AS kl,
           arg_max(value, t) FILTER (WHERE analysis = 'token_shift' AND metric = 'rank_shift') AS rank_shift,
           arg_max(value, t) FILTER (WHERE analysis = 'token_shift' AND metric = 'share_base_rank1')
             AS share_base_rank1,
           arg_max(value, t) FILTER (WHERE analysis = 'token_shift' AND metric = 'share_base_rank2_3')
             AS share_base_rank2_3,
           arg_max(value, t) FILTER (WHERE analysis = 'token_shift' AND metric = 'share_base_rank_gt3')
             AS share_base_rank_gt3,
           arg_max(value, t) FILTER (WHERE analysis = 'token_shift' AND metric = 'tokens') AS tokens
    FROM shift_rows
    GROUP BY run_id, scope, key
)
SELECT e.experiment, r.name AS model, m.base_model, p.run_id, p.scope, p.benchmark,
       coalesce(p."group", g.bgroup) AS "group", p.pca_d, p.logp_diff, p.kl, p.rank_shift,
       p.share_base_rank1, p.share_base_rank2_3, p.share_base_rank_gt3, p.tokens
FROM pivoted p JOIN runs r ON r.id = p.run_id JOIN experiment_runs e ON e.run_id = p.run_id
LEFT JOIN models m ON m.experiment = e.experiment AND m.model = r.name
LEFT JOIN bench_groups g ON g.benchmark = p.benchmark;

-- PCA shift per layer: the base and tuned mean projections on the base model's PC1/PC2, the
-- layer's shift (value) and the explained variance of PC1/PC2 where the run recorded it.
CREATE VIEW pca_points AS
SELECT e.experiment, r.name AS model, s.run_id, s.benchmark, s."group", s.layer,
       json_extract(s.payload, '$.base[0]')::DOUBLE AS base_pc1,
       json_extract(s.payload, '$.base[1]')::DOUBLE AS base_pc2,
       json_extract(s.payload, '$.tuned[0]')::DOUBLE AS tuned_pc1,
       json_extract(s.payload, '$.tuned[1]')::DOUBLE AS tuned_pc2,
       s.value AS shift,
       json_extract(s.payload, '$.explained_variance[0]')::DOUBLE AS explained_pc1,
       json_extract(s.payload, '$.explained_variance[1]')::DOUBLE AS explained_pc2
FROM shift_results s JOIN runs r ON r.id = s.run_id JOIN experiment_runs e ON e.run_id = s.run_id
WHERE s.analysis = 'pca_shift' AND s.metric = 'points';

-- The tokens a tuned model shifts most often (token shift's top_tokens payload, one row each).
CREATE VIEW token_shift_top AS
WITH lists AS (
    SELECT e.experiment, r.name AS model, s.run_id, s.benchmark, s."group",
           from_json(s.payload, '[{"token":"VARCHAR","count":"BIGINT","mean_base_rank":"DOUBLE"}]') AS items
    FROM shift_results s JOIN runs r ON r.id = s.run_id JOIN experiment_runs e ON e.run_id = s.run_id
    WHERE s.analysis = 'token_shift' AND s.metric = 'top_tokens' AND json_type(s.payload) = 'ARRAY'
), flat AS (
    SELECT experiment, model, run_id, benchmark, "group",
           unnest(range(1::BIGINT, len(items)::BIGINT + 1)) AS rank, unnest(items) AS item
    FROM lists
)
SELECT experiment, model, run_id, benchmark, "group", rank,
       item.token AS token, item.count AS count, item.mean_base_rank AS mean_base_rank
FROM flat;
