"""One tuned model's flips against its base, for the TUI: what `tix flips` prints, plus one item's two
completions side by side.

The counts, item lists and McNemar p come from the `flip_summary` and `flips` views (storage
migrations 0008 and 0009, with `paired_stats` and `flip_stats` refreshed by the daemon first),
the very rows `tix flips` and `tix flips --items` select, so the screen and the CLI cannot
disagree. What the views do not hold is the text: `item_pair` reads the item's samples in the
two runs `item_verdicts` picked (each model's newest eval/score run of the benchmark), the last
record of each sample winning as in `item_verdicts`.

Runs in the daemon on a cursor of its own; imports neither duckdb nor numpy (a cursor is typed by
engine.analysis.paired's Cursor protocol), so any client may import its column names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.analysis.paired import Cursor

SUMMARY_COLUMNS = ("benchmark", "items", "gained", "lost", "net", "mcnemar_p")
"""Per benchmark, as `tix flips` prints them (its item lists come in `items` below)."""
ITEM_COLUMNS = ("benchmark", "item_id", "change", "base_verdict", "model_verdict", "base_run", "model_run")
"""Per flipped item, as `tix flips --items` prints them, with the two runs the verdicts come from."""
SAMPLE_COLUMNS = ("sample_idx", "completion", "extracted", "verdict", "tokens", "finish_reason", "flags")

MODEL_SQL = "SELECT base_model FROM models WHERE experiment = ? AND model = ?"
SUMMARY_SQL = (f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM flip_summary "
               "WHERE experiment = ? AND model = ? ORDER BY benchmark")
ITEMS_SQL = (f"SELECT {', '.join(ITEM_COLUMNS)} FROM flips "
             "WHERE experiment = ? AND model = ? ORDER BY benchmark, change, item_id")
RUNS_SQL = """SELECT t.run_id, b.run_id
FROM item_verdicts t
JOIN item_verdicts b ON b.experiment = t.experiment AND b.model = ? AND b.benchmark = t.benchmark
     AND b.item_id = t.item_id
WHERE t.experiment = ? AND t.model = ? AND t.benchmark = ? AND t.item_id = ?"""
"""The two runs an item's verdicts come from (any item both models have, flipped or not)."""
SAMPLES_SQL = f"""SELECT {', '.join(SAMPLE_COLUMNS)}, prompt, extra->>'gold' AS gold
FROM samples WHERE run_id = ? AND benchmark = ? AND item_id = ?
QUALIFY row_number() OVER (PARTITION BY sample_idx ORDER BY "offset" DESC) = 1
ORDER BY sample_idx"""


class NotFound(LookupError):
    """No such model in the experiment, or no such item in both models' runs."""


def base_of(cur: Cursor, experiment: str, model: str) -> str:
    """The model's base; NotFound for an unknown model or a base model (it has nothing to flip against)."""
    found = cur.execute(MODEL_SQL, [experiment, model]).fetchall()
    if not found:
        raise NotFound(f"no model {model!r} in experiment {experiment!r}")
    if found[0][0] is None:
        raise NotFound(f"{model!r} is a base model in {experiment!r}: "
                       "flips compare a tuned model with its base")
    return str(found[0][0])


def model_flips(cur: Cursor, experiment: str, model: str) -> dict[str, Any]:
    """Per benchmark gained, lost, net and McNemar p, and every flipped item, of `model` against its base."""
    base = base_of(cur, experiment, model)
    summary = [dict(zip(SUMMARY_COLUMNS, r, strict=True))
               for r in cur.execute(SUMMARY_SQL, [experiment, model]).fetchall()]
    items = [dict(zip(ITEM_COLUMNS, r, strict=True))
             for r in cur.execute(ITEMS_SQL, [experiment, model]).fetchall()]
    return {"experiment": experiment, "model": model, "base_model": base, "benchmarks": summary,
            "items": items}


def item_pair(cur: Cursor, experiment: str, model: str, benchmark: str, item_id: str,
              runs: tuple[str, str] | None = None) -> dict[str, Any]:
    """One item's prompt (once), gold answer, and each model's samples with their verdicts and answers.

    `runs`: (model run, base run) as the `flips` rows name them, so the samples are read by run
    (fast at any size) instead of through `item_verdicts`, which ranks every sample of the
    experiment; each run must be the named model's. Without them the newest runs are looked up."""
    base = base_of(cur, experiment, model)
    if runs is None:
        found = cur.execute(RUNS_SQL, [base, experiment, model, benchmark, item_id]).fetchall()
        if not found:
            raise NotFound(f"item {item_id!r} of {benchmark!r} is not in both {model!r}'s "
                           f"and {base!r}'s runs")
        runs = (found[0][0], found[0][1])
    else:
        check_runs(cur, experiment, [(runs[0], model), (runs[1], base)])
    model_side, model_first = _side(cur, model, runs[0], benchmark, item_id)
    base_side, base_first = _side(cur, base, runs[1], benchmark, item_id)
    first = base_first or model_first or {}
    return {"experiment": experiment, "base_model": base, "benchmark": benchmark, "item_id": item_id,
            "prompt": first.get("prompt"), "gold": first.get("gold"), "model": model_side, "base": base_side}


def check_runs(cur: Cursor, experiment: str, pairs: list[tuple[str, str]]) -> None:
    """NotFound unless each (run id, model) is an eval/score run of the experiment named for the model."""
    rows = cur.execute("SELECT r.id, r.name FROM runs r JOIN experiment_runs e ON e.run_id = r.id "
                       "WHERE e.experiment = ? AND r.kind IN ('eval', 'score') AND list_contains(?, r.id)",
                       [experiment, [run_id for run_id, _ in pairs]]).fetchall()
    found = dict(rows)
    for run_id, name in pairs:
        if found.get(run_id) != name:
            raise NotFound(f"run {run_id!r} is not an eval or score run of {name!r} in {experiment!r}")


def _side(cur: Cursor, name: str, run_id: str, benchmark: str,
          item_id: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One model's samples of the item in `run_id`, with the item's verdict: the mean over its
    samples, as `item_verdicts` has it (the last record of each sample); and the item's prompt and
    gold as its first sample has them (None: no samples), which the pair shows once."""
    rows = cur.execute(SAMPLES_SQL, [run_id, benchmark, item_id]).fetchall()
    samples = [dict(zip((*SAMPLE_COLUMNS, "prompt", "gold"), r, strict=True)) for r in rows]
    for s in samples:
        s["flags"] = list(s["flags"] or [])
    first = {"prompt": samples[0]["prompt"], "gold": samples[0]["gold"]} if samples else None
    scored = [float(s["verdict"]) for s in samples if s["verdict"] is not None]
    verdict = sum(scored) / len(scored) if scored else None
    for s in samples:
        del s["prompt"], s["gold"]
    return {"name": name, "run_id": run_id, "verdict": verdict,
            "correct": verdict is not None and verdict >= 0.5, "samples": samples}, first
