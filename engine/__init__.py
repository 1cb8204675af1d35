"""tix engine: everything but the TUI and the database layer, in one folder per process or domain.

Where things live (and which process imports them):

- `daemon/`      the daemon process only: server, scheduler, ingest, settings, GPU discovery,
                 executors (how a worker is started: `executors/local.py`).
- `client/`      the socket client and wire protocol: what the CLI, the TUI and scripts import.
- `experiments/` experiment files (spec), their expansion into runs (plan), trl argument checks,
                 built-in names; imported by the CLI (`tix check`, `tix run`) and the TUI editor.
- `evaluation/`  benchmarks and their loaders, scorers, generation backends, the code sandbox,
                 re-scoring and training data sets; imported by workers (and, light parts, the CLI).
- `analysis/`    TI maths and tables, PCA and token shift, imported published results; the
                 daemon's `ti` op, the CLI's renderers and the `analyse` job use it.
- `jobs/`        the worker entry point (`python -m engine.jobs.worker RUN_DIR`) and the job kinds.
- `lab/`         the tiny lab (tasks, corpus, model) and `tix demo`.
- `events.py`, `workspace.py`: the run-folder contract and the workspace paths, shared by the
                 daemon and the workers; `cli.py` and `doctor.py` are entry points.

Heavy libraries (torch, transformers, trl, vllm) are imported only inside job code that runs
in worker processes, so that importing `engine` from a client stays cheap; tests/unit/
test_imports.py holds the rules per folder.
"""

__version__ = "0.1.0"
