-- 0004: a released model may name its own base (`from:` another released variant, or `none`
-- for a base of its own, as in a model zoo) and carry a method label (`method:`); its eval run's
-- params hold them as `base_model` and `method`. Models without them read as before: the
-- experiment's `base` is the base of every other model, the method is the training method.
CREATE OR REPLACE VIEW models AS
WITH run_models AS (
    SELECT e.experiment, r.name AS model,
           any_value(CASE WHEN r.kind = 'eval' THEN json_extract_string(r.params, '$.base_model') END) AS declared,
           any_value(CASE WHEN r.kind = 'train' THEN json_extract_string(r.params, '$.method') END) AS trained,
           any_value(CASE WHEN r.kind = 'eval' THEN json_extract_string(r.params, '$.method') END) AS label
    FROM runs r JOIN experiment_runs e ON e.run_id = r.id
    WHERE r.kind IN ('build', 'train', 'eval', 'score') AND r.name IS NOT NULL
    GROUP BY ALL
), based AS (
    SELECT *, model = 'base' OR declared = 'none' AS is_base FROM run_models
)
SELECT m.experiment, m.model, CASE WHEN is_base THEN NULL ELSE coalesce(declared, 'base') END AS base_model,
       coalesce(trained, label, CASE WHEN is_base THEN 'base' END) AS method,
       'runs' AS source, NULL::INTEGER AS position
FROM based m
WHERE NOT EXISTS (SELECT 1 FROM imported_models i WHERE i.experiment = m.experiment AND i.model = m.model)
UNION ALL
SELECT experiment, model, base_model, method, 'import:' || coalesce(source, '?'), position
FROM imported_models;
