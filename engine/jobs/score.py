"""The `score` job: re-score a file of saved generations and store it like an eval run.

`tix score --experiment E --model M ...` queues it; the worker calls `engine.evaluation.rescore.rescore`
(the same scorers and summary an eval run uses), writes one `samples.jsonl` line per scored
completion and `score` events labelled with model M, so the stored result is indistinguishable
from an eval run's. Run: `python -m engine.jobs.worker RUN_DIR` with `kind: score`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.evaluation.rescore import rescore
from engine.jobs import JobContext
from engine.jobs.eval import emit_scores

VERSION = "1"


def run(ctx: JobContext) -> dict[str, Any]:
    params = ctx.params
    data = Path(params["data"]) if params.get("data") else None
    result = rescore(params["benchmark"], Path(params["generations"]), data, params.get("scorer"))
    for sample in result.samples:
        ctx.samples.write(sample)
    ctx.events.progress(len(result.samples), len(result.samples), params["benchmark"])
    emit_scores(ctx, params["benchmark"], {**result.summary, "stderr": result.summary["stderr"]})
    return {"model": params.get("label"), "summary": result.summary}
