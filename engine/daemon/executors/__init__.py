"""Executors: how the daemon starts a run's worker, signals it and tells whether it lives.

`local` runs each worker as a detached process on this machine (`python -m engine.jobs.worker
RUN_DIR`). Whatever the executor, the worker only writes its run folder and the daemon only
reads it. Imported by the daemon's scheduler.
"""
