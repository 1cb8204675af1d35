"""Executors: how the daemon starts a run's worker, signals it and tells whether it lives.

`base` is the interface the scheduler uses (submit, poll/status, terminate/kill, adopt after a
restart). `local` runs each worker as a detached process on this machine; `slurm` submits it as a
batch job to a Slurm cluster that shares the filesystem. Whatever the executor, the worker is
`python -m engine.jobs.worker RUN_DIR`, it only writes its run folder, and the daemon only reads
it. Imported by the daemon's scheduler.
"""
