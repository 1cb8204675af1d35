"""The daemon: the one process that opens the database (`python -m engine.daemon.server`).

`server` serves the socket ops, `scheduler` is the run state machine (dependencies, GPU slots,
retries, adoption of running workers after a restart), `ingest` tails run folders into DuckDB,
`runlog` and `tui_ops` serve the TUI's log tail and SQL console, `settings` reads config.yaml
and `TIX_*`, `gpus` discovers GPUs, and `executors/` starts and watches workers. Imported only
by the daemon process (and `tix doctor` for GPU discovery); clients and the TUI never import it.
"""
