"""One rank of a distributed `train` run: `python -m engine.jobs.train_rank RUN_DIR`.

Started by engine.jobs.train_launch (under accelerate or torch.distributed.run), never by hand.
Rank 0 writes the run's events and `train_result.json`; the other ranks write nothing, so the
daemon sees one story however many processes train.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from engine.events import EVENTS_FILE, EventWriter, write_atomic
from engine.jobs import JobContext, Stop
from engine.jobs.train_launch import RESULT_FILE


class NullEvents(EventWriter):
    """The events of ranks other than 0: dropped."""

    def __init__(self) -> None:  # no file
        pass

    def write(self, obj: dict[str, Any]) -> None:
        return None

    def close(self) -> None:
        return None


def main(run_dir: Path) -> int:
    from engine.jobs import train
    from engine.jobs.worker import load_spec

    rank0 = os.environ.get("RANK", "0") == "0"
    spec = load_spec(run_dir)
    events = EventWriter(run_dir / EVENTS_FILE) if rank0 else NullEvents()
    ctx = JobContext.from_spec(run_dir, spec, events)
    try:
        result = train.train_once(ctx)
    except Stop as stop:
        result = {"stopped": str(stop)}
    finally:
        events.close()
    if rank0:
        write_atomic(run_dir / RESULT_FILE, json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]).resolve()))
