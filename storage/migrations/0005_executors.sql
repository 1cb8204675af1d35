-- 0005: where a run's worker runs. `executor` is the executor that started its latest attempt
-- (`local` or `slurm`; NULL = local, as before this migration), so a later daemon adopts it with
-- the same one. For Slurm: `job_id` (the batch job of the latest attempt), `node` (Slurm's node
-- list) and `reason` (why the job waits, e.g. `Resources`, or how Slurm ended it, e.g.
-- `TIMEOUT (TimeLimit)`). `host` stays the machine of the daemon that started the run.
ALTER TABLE runs ADD COLUMN executor VARCHAR;
ALTER TABLE runs ADD COLUMN job_id VARCHAR;
ALTER TABLE runs ADD COLUMN node VARCHAR;
ALTER TABLE runs ADD COLUMN reason VARCHAR;
