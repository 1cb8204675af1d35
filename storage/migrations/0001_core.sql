-- 0001: experiments, runs and their event stream.
CREATE TABLE experiments (
    name        VARCHAR PRIMARY KEY,
    path        VARCHAR,
    spec        VARCHAR,             -- the YAML text as submitted
    spec_hash   VARCHAR,
    created_at  TIMESTAMP DEFAULT current_timestamp,
    updated_at  TIMESTAMP DEFAULT current_timestamp
);

CREATE TABLE runs (
    id              VARCHAR PRIMARY KEY,  -- kind + content hash: identical runs share an id
    experiment      VARCHAR,              -- the experiment that first asked for it
    name            VARCHAR,              -- variant name ("base", "sft", ...)
    kind            VARCHAR NOT NULL,     -- build | train | eval | analyse | probe
    state           VARCHAR NOT NULL,     -- queued | running | succeeded | failed | cancelled
    params          JSON,                 -- the job's parameters before input resolution
    deps            VARCHAR[],            -- run ids that must succeed first
    gpus_needed     INTEGER DEFAULT 0,
    gpus            VARCHAR,              -- CUDA_VISIBLE_DEVICES given to the worker
    pid             INTEGER,
    pid_started     DOUBLE,               -- process create time, guards against pid reuse
    host            VARCHAR,
    run_dir         VARCHAR,
    created_at      TIMESTAMP DEFAULT current_timestamp,
    started_at      TIMESTAMP,
    finished_at     TIMESTAMP,
    heartbeat_at    TIMESTAMP,
    progress        DOUBLE,               -- 0..1 when the job knows its total
    progress_text   VARCHAR,
    error           VARCHAR,
    result          JSON,
    attempt         INTEGER DEFAULT 0,
    max_retries     INTEGER DEFAULT 0,
    cancel_requested BOOLEAN DEFAULT false
);

CREATE TABLE experiment_runs (
    experiment  VARCHAR,
    run_id      VARCHAR,
    PRIMARY KEY (experiment, run_id)
);

CREATE TABLE events (
    run_id  VARCHAR NOT NULL,
    "offset" BIGINT NOT NULL,             -- byte offset of the line in events.jsonl
    t       TIMESTAMP,
    type    VARCHAR NOT NULL,
    payload JSON
);

CREATE TABLE metrics (
    run_id  VARCHAR NOT NULL,
    step    BIGINT,
    name    VARCHAR NOT NULL,
    value   DOUBLE,
    t       TIMESTAMP
);

-- Where ingest stopped in each run file; updated in the same transaction as the rows it covers.
CREATE TABLE ingest_offsets (
    run_id  VARCHAR NOT NULL,
    file    VARCHAR NOT NULL,
    "offset" BIGINT NOT NULL,
    bad_lines BIGINT DEFAULT 0,
    PRIMARY KEY (run_id, file)
);
