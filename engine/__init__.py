"""tix engine: experiment specs, the daemon, its client, workers and jobs.

Heavy libraries (torch, transformers, trl, vllm) are imported only inside job code that runs
in worker processes, so that importing `engine` from a client stays cheap.
"""

__version__ = "0.1.0"
