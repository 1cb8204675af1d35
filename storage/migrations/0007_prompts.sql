-- 0007: each prompt stored once (issue 27). Every sample of an item, and every model's sample of
-- it, carries the same prompt: at paper scale (24 models x 46k items, avg@k) that is one copy
-- per sample. Samples keep a 128-bit hash of their prompt (`sample_rows.prompt_hash`) and the
-- text lives in `prompts`; `samples` becomes a view with the same columns in the same order, so
-- every query, view and client reads it as before. Ingest writes both (Store._append_arrow).
-- Each row also keeps `think_open` (a <think> after the last </think>), worked out once at
-- ingest: output_health computed it per call by splitting every completion, which read the
-- whole text of the workspace (10 s for `tix health` at paper scale).
CREATE TABLE prompts (
    hash   UHUGEINT NOT NULL,             -- md5_number(prompt)
    prompt VARCHAR NOT NULL
);
INSERT INTO prompts SELECT DISTINCT md5_number(prompt), prompt FROM samples WHERE prompt IS NOT NULL;

CREATE TABLE sample_rows (
    run_id        VARCHAR NOT NULL,
    "offset"      BIGINT NOT NULL,        -- byte offset of the line in samples.jsonl
    benchmark     VARCHAR,
    item_id       VARCHAR,
    sample_idx    INTEGER,
    prompt_hash   UHUGEINT,               -- prompts.hash; NULL = no prompt
    completion    VARCHAR,
    extracted     VARCHAR,
    verdict       DOUBLE,
    tokens        INTEGER,
    finish_reason VARCHAR,
    flags         VARCHAR[],
    extra         JSON,
    think_open    BOOLEAN                 -- a <think> after the last </think> in completion
);
INSERT INTO sample_rows
SELECT run_id, "offset", benchmark, item_id, sample_idx, md5_number(prompt), completion, extracted,
       verdict, tokens, finish_reason, flags, extra,
       contains(completion, '<think>') AND contains(list_last(string_split(completion, '</think>')), '<think>')
FROM samples ORDER BY run_id, "offset";
DROP TABLE samples;

CREATE VIEW samples AS
SELECT s.run_id, s."offset", s.benchmark, s.item_id, s.sample_idx, p.prompt, s.completion, s.extracted,
       s.verdict, s.tokens, s.finish_reason, s.flags, s.extra
FROM sample_rows s LEFT JOIN prompts p ON p.hash = s.prompt_hash;

-- As in 0003, with the stored think_open instead of splitting each completion per call.
CREATE OR REPLACE VIEW output_health AS
WITH s AS (
    SELECT run_id, benchmark,
           list_contains(coalesce(flags, []), 'no_answer') OR extracted IS NULL
             OR trim(extracted) = '' AS no_answer,
           finish_reason = 'length' OR list_contains(coalesce(flags, []), 'truncated') AS truncated,
           list_contains(coalesce(flags, []), 'unclosed_think') OR coalesce(think_open, false) AS unclosed_think,
           tokens
    FROM sample_rows
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
