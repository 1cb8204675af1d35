"""The `tix` command line: a thin client of the daemon (it never opens the database).

Every command takes the workspace from `--home DIR`, else `TIX_HOME`, else `~/.tix`. Errors are
one line on stderr: exit status 2 for bad input (an invalid experiment, a refused or wrong SQL
query, an unknown run), 1 for a failed operation, 0 for success.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from engine.analysis import report as tables
from engine.analysis.report import FORMATS
from engine.client.connection import Client, DaemonUnavailable, RequestFailed, daemon_running, start_daemon
from engine.workspace import Workspace

INPUT_ERRORS = {"refused", "query_error", "bad_request", "not_found"}
STATUS_COLUMNS = ("id", "experiment", "name", "kind", "state", "progress", "started", "finished")
TERMINAL = {"succeeded", "failed", "cancelled"}


class Failure(click.ClickException):
    """A one-line error with an exit status."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        click.echo(f"tix: error: {self.message}", err=True)


def workspace(ctx: click.Context) -> Workspace:
    return ctx.find_root().obj


def connect(ctx: click.Context) -> Client:
    return Client(workspace(ctx))


def call(ctx: click.Context, op: str, **args: Any) -> Any:
    """One request on a fresh connection, with daemon errors turned into one-line failures."""
    with connect(ctx) as client:
        return client.request(op, **args)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False), envvar="TIX_HOME",
              help="Workspace folder (default: TIX_HOME, else ~/.tix).")
@click.pass_context
def cli(ctx: click.Context, home: str | None) -> None:
    """tix: a terminal experiment manager for LLM post-training research.

    Bare `tix` opens the TUI when it runs in a terminal; with its output piped or redirected it
    prints this help, so scripts see text, not a full-screen app.
    """
    ctx.obj = Workspace.resolve(home)
    # What runs in this process and the daemon it starts (experiment checks, the planner, benchmark
    # files under TIX_HOME/benchmarks) reads TIX_HOME: `--home` must mean the same workspace there.
    os.environ["TIX_HOME"] = str(ctx.obj.home)
    if ctx.invoked_subcommand is None:
        if sys.stdout.isatty() and sys.stdin.isatty():
            from tui.app import main as open_tui

            open_tui(str(ctx.obj.home))
            return
        click.echo(ctx.get_help())


# -- experiments ----------------------------------------------------------------------------------
@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--plan", "show_plan", is_flag=True,
              help="Also list the runs `tix run` would queue: kind, model, GPUs, what each waits for "
                   "(and each run's sbatch line when the workspace's executor is slurm).")
@click.option("--sbatch", "show_sbatch", is_flag=True,
              help="With --plan: print each run's sbatch line whatever the executor (nothing is submitted).")
@click.option("--show-prompt", is_flag=True,
              help="FILES are benchmark files: check each, then print its first item's prompt and "
                   "gold answer.")
@click.pass_context
def check(ctx: click.Context, files: tuple[str, ...], show_plan: bool, show_sbatch: bool,
          show_prompt: bool) -> None:
    """Validate experiment files: prints `ok` or one line per error (exit 2 when invalid).

    With --show-prompt, FILES are benchmark files, and a valid one prints its first item.
    """
    from engine.experiments.spec import check_file

    if show_prompt:
        if show_plan or show_sbatch:
            raise Failure("--show-prompt takes benchmark files; --plan and --sbatch take experiment files", 2)
        show_prompts(files)
        return
    bad = False
    for file in files:
        errors = check_file(file)
        for error in errors:
            click.echo(str(error), err=True)
        if not errors:
            click.echo(f"{file}: ok" if len(files) > 1 else "ok")
            if show_plan:
                runs = load_plan(file, ())[1]
                click.echo(plan_table(runs))
                for line in sbatch_lines(workspace(ctx), runs, show_sbatch):
                    click.echo(line)
        bad = bad or bool(errors)
    if bad:
        sys.exit(2)


def show_prompts(files: tuple[str, ...]) -> None:
    """`tix check --show-prompt`: each benchmark file checked, then its first item as the model
    gets it (before the chat template) with the gold answer; no daemon needed. Exit 2 when any
    file is invalid or its first item cannot be rendered."""
    results = [show_prompt_of(file) for file in files]
    if not all(results):
        sys.exit(2)


def show_prompt_of(file: str) -> bool:
    """One benchmark file's errors (stderr) or its first item (stdout); whether it was valid."""
    from engine.evaluation.benchfile import check_benchmark_file, preview
    from engine.evaluation.benchmarks import BenchmarkError

    errors = check_benchmark_file(file)
    for error in errors:
        click.echo(str(error), err=True)
    if errors:
        return False
    try:
        click.echo(preview(file))
    except BenchmarkError as exc:  # a row the templates cannot render, a hub dataset offline
        click.echo(str(exc), err=True)
        return False
    return True


def sbatch_lines(ws: Workspace, runs: list[dict[str, Any]], always: bool) -> list[str]:
    """Each run's sbatch command as the Slurm executor would build it from this workspace's settings
    and the run's `slurm:` overrides: the cluster's view of a plan, checked before anything queues.
    Printed when the executor is slurm, or `always`; only builds the argv, so no Slurm is needed."""
    from engine.daemon.executors.base import Launch, SubmitError
    from engine.daemon.executors.slurm import SCRIPT_FILE, job_settings, sbatch_argv
    from engine.daemon.settings import DaemonSettings

    try:
        settings = DaemonSettings.load(ws.config)
    except ValueError as exc:
        raise Failure(str(exc), 2) from None
    if settings.executor != "slurm" and not always:
        return []
    lines = [f"sbatch lines (executor {settings.executor}; settings from {ws.config} and the file's slurm:):"]
    for run in runs:
        run_dir = ws.run_dir(run["id"])
        launch = Launch(run["id"], run_dir, 1, {}, int(run["gpus_needed"] or 0),
                        (run["params"] or {}).get("slurm") or {}, (run["params"] or {}).get("nodes"))
        try:
            argv = [*sbatch_argv(launch, job_settings(launch, settings.slurm)), str(run_dir / SCRIPT_FILE)]
        except SubmitError as exc:
            lines.append(f"{run['id']}: not submitted: {exc}")
            continue
        lines.append(f"{run['id']}: {shlex.join(argv)}")
    return lines


def plan_table(runs: list[dict[str, Any]]) -> str:
    """The planned runs in dependency order, as a dry run before a many-GPU-hour launch."""
    rows = [[r["id"], r["kind"], r["name"], r["gpus_needed"] or "cpu",
             ", ".join(d.split("-")[0] + "-" + d.split("-")[1][:4] for d in r["deps"]) or "-"] for r in runs]
    return render_table(["run", "kind", "model", "gpus", "after"], rows) + \
        f"\n{len(runs)} runs; each starts when what it waits for has succeeded and its GPUs are free"


def load_plan(file: str, only: tuple[str, ...],
              models: tuple[str, ...] = ()) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from engine.experiments.plan import content_hash, plan_experiment
    from engine.experiments.spec import SpecErrors, load_experiment

    try:
        exp = load_experiment(file)
    except SpecErrors as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    record = {"name": exp.name, "path": str(exp.path), "spec": exp.text,
              "spec_hash": content_hash(exp.text)}
    unknown = sorted(set(models) - {"base", *exp.data["models"]})
    if unknown:
        raise Failure(f"{file}: no model named {', '.join(unknown)} (models: base, "
                      f"{', '.join(exp.data['models']) or 'none'})", 2)
    return record, plan_experiment(exp, set(only) or None, set(models) or None)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--wait", is_flag=True,
              help="Show progress until every run ends; exit 0 only if all succeeded.")
@click.option("--only", multiple=True, type=click.Choice(["build", "datagen", "train", "eval", "analyse"]),
              help="Queue only runs of this kind (and what they depend on). Repeatable.")
@click.option("--model", "models", multiple=True,
              help="Queue only runs of this model: base or a variant (and their dependencies). Repeatable.")
@click.pass_context
def run(ctx: click.Context, file: str, wait: bool, only: tuple[str, ...], models: tuple[str, ...]) -> None:
    """Queue an experiment's runs (identical runs already done are reused)."""
    submit(ctx, *load_plan(file, only, models), wait=wait)


def submit(ctx: click.Context, record: dict[str, Any], runs: list[dict[str, Any]], wait: bool) -> None:
    """Queue a planned experiment; with `wait`, watch it and exit 0 only if every run succeeded."""
    with connect(ctx) as client:
        if wait:
            client.subscribe()
        queued = client.request("submit", experiment=record, runs=runs)
        for item in queued:
            note = " (reused)" if item["reused"] else ""
            click.echo(f"{item['id']}  {item['state']}{note}")
        if wait:
            ok = watch(client, [item["id"] for item in queued])
            sys.exit(0 if ok else 1)


def watch(client: Client, run_ids: list[str]) -> bool:
    """`wait_for`, with Ctrl-C detaching from the runs instead of stopping them."""
    try:
        return wait_for(client, run_ids)
    except KeyboardInterrupt:
        click.echo("\nstopped watching; the runs go on (`tix status`, `tix cancel`)", err=True)
        sys.exit(130)


def wait_for(client: Client, run_ids: list[str]) -> bool:
    """Print state changes and progress until every run is terminal; True if all succeeded."""
    runs = {r["id"]: r for r in client.request("status", ids=run_ids)}
    shown: dict[str, tuple[str, int]] = {}
    for run in runs.values():
        report(run, shown)
    while not all(r["state"] in TERMINAL for r in runs.values()):
        for message in client.pushes(timeout=5.0):
            run = message.get("run")
            if run and run["id"] in runs:
                runs[run["id"]] = run
                report(run, shown)
            if all(r["state"] in TERMINAL for r in runs.values()):
                break
        else:
            runs.update({r["id"]: r for r in client.request("status", ids=run_ids)})
    failed = [r for r in runs.values() if r["state"] != "succeeded"]
    for run in failed:
        click.echo(f"{run['id']} {run['state']}: {run['error'] or ''}".rstrip(), err=True)
    return not failed


def report(run: dict[str, Any], shown: dict[str, tuple[str, int]]) -> None:
    """One line when a run changes state or passes another tenth of its progress."""
    tenth = int((run.get("progress") or 0) * 10)
    if shown.get(run["id"]) == (run["state"], tenth):
        return
    shown[run["id"]] = (run["state"], tenth)
    stamp = time.strftime("%H:%M:%S")
    progress = f" {run['progress_text']}" if run["state"] == "running" and run.get("progress_text") else ""
    click.echo(f"[{stamp}] {run['id']} {run['name'] or ''} {run['kind']}: {run['state']}{progress}")


@cli.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.pass_context
def demo(ctx: click.Context, file: str | None) -> None:
    """Run the tiny lab end to end: build, SFT and GRPO on maths, evaluate, analyse, print TI and shift.

    FILE: a lab experiment of your own (say a copy of experiments/tiny-lab.yaml with other steps,
    tasks or seeds) instead of the shipped one; the same tables are printed for it."""
    path = Path(file) if file else Path(__file__).resolve().parent.parent / "experiments" / "tiny-lab.yaml"
    if not path.is_file():
        hint = "" if file else ": run `tix demo` from an editable install (make demo)"
        raise Failure(f"{path} not found{hint}")
    record, runs = load_plan(str(path), ())
    click.echo(f"tix demo: {path} (workspace {workspace(ctx).home})")
    started = time.time()
    try:
        submit(ctx, record, runs, wait=True)
    except SystemExit as exc:
        if exc.code:
            raise
    print_demo_tables(ctx, record["name"], started)


def print_demo_tables(ctx: click.Context, name: str, started: float) -> None:
    """The demo's closing tables for experiment `name`: accuracies, paired differences with their
    intervals and tests, TI (v1, v2) with intervals, and shift per group."""
    from engine.lab import demo as lab_demo

    result = call(ctx, "sql", query=lab_demo.SCORES_SQL, params=[name])
    scores, groups = lab_demo.collect(result["rows"])
    models = ["base", *sorted(m for m in scores if m != "base")]
    click.echo(f"\naccuracy (%, greedy) after {time.time() - started:.0f} s:")
    click.echo(render_table(["group", "benchmark", *models], lab_demo.accuracy_rows(scores, groups, models)))
    v1 = call(ctx, "ti", experiment=name, variant="v1")["results"]
    v2 = call(ctx, "ti", experiment=name, variant="v2", sigma="pooled")["results"]
    click.echo("\n" + lab_demo.PAIRED_TITLE)
    click.echo(render_table(lab_demo.PAIRED_COLUMNS, lab_demo.paired_rows(v2)))
    click.echo("\nTransferability Index against the base (group means, Δ: signed change from the base;\n"
               "[low, high]: 95% paired bootstrap interval, 2,000 replicates):")
    click.echo(render_table(lab_demo.TI_COLUMNS, lab_demo.ti_rows(v1, v2)))
    for note in lab_demo.ti_notes(v1, v2):
        click.echo(note)
    shift = call(ctx, "sql", query=lab_demo.SHIFT_SQL, params=[name])
    click.echo("\nShift against the base per group (PCA d over layers; token shift on own answers):")
    click.echo(render_table(lab_demo.SHIFT_COLUMNS, lab_demo.shift_rows(shift["rows"])))
    click.echo("\nnext: `tix status` lists the runs, `tix logs RUN` shows a worker's output,\n"
               "      `tix sql \"SELECT r.name, m.step, m.value FROM metrics m JOIN runs r "
               "ON r.id = m.run_id WHERE m.name = 'loss'\"` shows the training curves")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as a JSON array.")
@click.option("--quick", is_flag=True, help="Skip the one-step SFT and GRPO runs.")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool, quick: bool) -> None:
    """Check this box: versions, CUDA and GPU memory, vLLM, a tiny generation per backend,
    one-step SFT and GRPO runs, disk space (exit 1 if a required check fails)."""
    import subprocess

    cmd = [sys.executable, "-m", "engine.doctor", "--home", str(workspace(ctx).home)]
    cmd += ["--json"] * as_json + ["--quick"] * quick
    sys.exit(subprocess.run(cmd, stderr=subprocess.DEVNULL if as_json else None).returncode)


# -- benchmarks and re-scoring --------------------------------------------------------------------
@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.option("--lm-eval", "lm_eval", is_flag=True,
              help="List lm-eval's tasks, groups and tags instead: name, kind, output type, source YAML.")
@click.option("--include-path", metavar="DIR",
              help="With --lm-eval: a folder of your own lm-eval task YAMLs, listed over the installed ones.")
@click.pass_context
def benchmarks(ctx: click.Context, as_json: bool, lm_eval: bool, include_path: str | None) -> None:
    """List benchmarks: name, group, source, scorer and size (local copies are counted).

    The registered ones, then the benchmark files under TIX_HOME/benchmarks/ (source
    `file:PATH`). A broken file is listed too, with its first error (on stderr, and as `error`
    in --json), so one bad file never hides the others. With --lm-eval, the names an
    `{lm_eval: TASK}` entry may use instead (read from the task YAMLs, no data set loaded).
    """
    if lm_eval:
        lm_eval_tasks(ctx, include_path, as_json)
        return
    if include_path is not None:
        raise Failure("--include-path lists lm-eval tasks: add --lm-eval", 2)
    from engine.evaluation.benchfile import describe_home
    from engine.evaluation.benchmarks import REGISTRY, BenchmarkError, describe

    try:
        rows = [describe(b) for b in REGISTRY.values()]
    except BenchmarkError as exc:
        raise Failure(str(exc), 2) from None
    rows += describe_home(workspace(ctx).home)
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    cols = ["name", "group", "source", "scorer", "size"]
    shown = [{**r, "source": tail(r["source"]), "scorer": tail(r["scorer"])} for r in rows]
    click.echo(render_table(cols, [[r[c] if r[c] is not None else "?" for c in cols] for r in shown]))
    for row in rows:
        if row.get("error"):
            click.echo(row["error"], err=True)


def lm_eval_tasks(ctx: click.Context, include_path: str | None, as_json: bool) -> None:
    """`tix benchmarks --lm-eval`: the installed lm-eval's index (cached in the workspace, as
    `tix check` reads it), with `include_path`'s tasks over it."""
    from engine.evaluation import lmeval_index

    folder = Path(include_path).expanduser().resolve() if include_path is not None else None
    if folder is not None and not folder.is_dir():
        raise Failure(f"--include-path {include_path}: no such folder", 2)
    try:
        rows = lmeval_index.listing(str(folder) if folder else None, workspace(ctx).home)
    except lmeval_index.LmEvalError as exc:
        raise Failure(str(exc), 2) from None
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    click.echo(render_table(["name", "kind", "output type", "source"],
                            [[r["name"], r["kind"], r["output_type"], tail(r["source"])] for r in rows]))


def tail(text: str | None, width: int = tables.MAX_CELL) -> str | None:
    """A long path's end (its file name), not its start, for a table cell (`--json` has it all)."""
    if text is None or len(text) <= width:
        return text
    head = text.split(":", 1)[0] + ":" if text.startswith(("file:", "lm-eval:")) else ""
    return head + "..." + text[len(text) - (width - len(head) - 3):]


@cli.command()
@click.option("--benchmark", "-b", required=True, help="Benchmark name (see `tix benchmarks`).")
@click.option("--generations", "-g", required=True, type=click.Path(dir_okay=False),
              help="JSONL: output|completion|response, and id|index|input|prompt per line.")
@click.option("--data", type=click.Path(dir_okay=False),
              help="Local copy of the benchmark in its own format.")
@click.option("--scorer", help="Score with this scorer instead of the benchmark's.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--experiment", "-e",
              help="Store the scores and samples under this experiment (needs --model).")
@click.option("--model", "-m", help="The model name the generations came from (with --experiment).")
@click.pass_context
def score(ctx: click.Context, benchmark: str, generations: str, data: str | None, scorer: str | None,
          fmt: str, experiment: str | None, model: str | None) -> None:
    """Re-score saved generations without regenerating them."""
    if bool(experiment) != bool(model):
        raise Failure("--experiment and --model go together", 2)
    summary = (store_score(ctx, benchmark, generations, data, scorer, experiment, model) if experiment
               else local_score(benchmark, generations, data, scorer))
    click.echo(json.dumps(summary, indent=1) if fmt == "json" else render_score(summary))


def local_score(benchmark: str, generations: str, data: str | None, scorer: str | None) -> dict[str, Any]:
    from engine.evaluation.benchmarks import BenchmarkError
    from engine.evaluation.rescore import rescore

    try:
        return rescore(benchmark, Path(generations), Path(data) if data else None, scorer).summary
    except (BenchmarkError, LookupError) as exc:
        raise Failure(str(exc).strip("'\""), 2) from None


def store_score(ctx: click.Context, benchmark: str, generations: str, data: str | None,
                scorer: str | None, experiment: str, model: str) -> dict[str, Any]:
    """Queue a `score` run filed under the experiment, wait for it, return its summary."""
    from engine.experiments.plan import make_run, path_signature

    gens = str(Path(generations).resolve())
    params = {"benchmark": benchmark, "generations": gens, "generations_signature": path_signature(gens),
              "data": str(Path(data).resolve()) if data else None, "scorer": scorer, "label": model}
    run_plan = make_run("score", model, experiment, params, [])
    with connect(ctx) as client:
        client.subscribe()
        client.request("submit", experiment={"name": experiment}, runs=[run_plan])
        if not wait_for(client, [run_plan["id"]]):
            sys.exit(1)
        return client.request("run", id=run_plan["id"])["result"]["summary"]


def render_score(summary: dict[str, Any]) -> str:
    rows = [[k, f"{v:.2f}"] for k, v in summary["metrics"].items()]
    rows.append(["stderr", f"{summary['stderr']:.2f}"])
    rows += [[f"health: {k}", str(v)] for k, v in summary["health"].items()]
    head = (f"{summary['benchmark']} ({summary['scorer']}): {summary['n']} items, "
            f"{summary['samples']} samples")
    if summary.get("unmatched_lines"):
        head += f", {summary['unmatched_lines']} unmatched lines"
    return head + "\n" + render_table(["metric", "value"], rows)


# -- runs -----------------------------------------------------------------------------------------
@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of run objects.")
@click.option("--experiment", "-e", help="Only runs of this experiment.")
@click.option("--state", "states", multiple=True,
              type=click.Choice(["queued", "running", "succeeded", "failed", "cancelled"]),
              help="Only runs in this state. Repeatable.")
@click.pass_context
def status(ctx: click.Context, as_json: bool, experiment: str | None, states: tuple[str, ...]) -> None:
    """List runs: id, experiment, kind, state, progress, started, finished (and the Slurm job of
    runs on a cluster: its id, then its node, why it waits, or how Slurm ended it)."""
    runs = call(ctx, "status", experiment=experiment, states=list(states))
    if as_json:
        click.echo(json.dumps(runs, indent=1))
        return
    columns = list(STATUS_COLUMNS)
    rows = [[run["id"], run["experiment"] or "", run["name"] or "", run["kind"], run["state"],
             progress_cell(run), (run["started_at"] or "")[:19], (run["finished_at"] or "")[:19]]
            for run in runs]
    if any(run.get("job_id") for run in runs):
        columns.append("slurm job")
        for row, run in zip(rows, runs, strict=True):
            row.append(job_cell(run))
    click.echo(render_table(columns, rows) if rows else "no runs")


def job_cell(run: dict[str, Any]) -> str:
    """`12 pending (Reason=Resources)`, `12 on node7` or `12 TIMEOUT (TimeLimit)`: a queued run on a
    cluster says why it waits."""
    job, reason = run.get("job_id"), run.get("reason")
    if not job:
        return ""
    if run["state"] == "queued":
        return f"{job} pending (Reason={reason})" if reason else f"{job} submitted"
    if reason and run["state"] in TERMINAL:
        return f"{job} {reason}"
    return f"{job} on {run['node']}" if run.get("node") else str(job)


def progress_cell(run: dict[str, Any]) -> str:
    if run["state"] == "succeeded":
        return "done"
    if run.get("progress") is not None:
        return f"{run['progress'] * 100:.0f}%"
    return run.get("progress_text") or ""


@cli.command()
@click.argument("run_ref", metavar="RUN")
@click.option("--with-dependants", "dependants", is_flag=True,
              help="Also queue the runs that this run's cancel or failure took down.")
@click.option("--wait", is_flag=True, help="Show progress until the run (and those dependants) end.")
@click.pass_context
def resume(ctx: click.Context, run_ref: str, dependants: bool, wait: bool) -> None:
    """Queue a failed or cancelled run again; it continues from what it already recorded."""
    with connect(ctx) as client:
        if wait:
            client.subscribe()
        run_info = client.request("resume", id=run_ref, dependants=dependants)
        again = list(run_info.get("dependants") or [])
        click.echo(f"{run_info['id']}  queued (resuming)")
        for run_id in again:
            click.echo(f"{run_id}  queued (resuming: its dependency was resumed)")
        left = run_info.get("left") or []
        if left:
            click.echo(f"not queued: {', '.join(left)}, which its end took down (--with-dependants queues "
                       "them too)")
        if wait:
            sys.exit(0 if watch(client, [run_info["id"], *again]) else 1)


@cli.command()
@click.argument("target")
@click.pass_context
def cancel(ctx: click.Context, target: str) -> None:
    """Cancel a run (id or unique prefix) or every unfinished run of an experiment."""
    done = call(ctx, "cancel", target=target)
    click.echo("\n".join(f"cancelling {run_id}" for run_id in done) if done else "nothing to cancel")


@cli.command("diff")
@click.argument("left", metavar="RUN")
@click.argument("right", metavar="RUN")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON: left, right, rows, same.")
@click.pass_context
def diff_runs(ctx: click.Context, left: str, right: str, as_json: bool) -> None:
    """The configuration keys two runs differ in (parameters, seeds, data, inputs, hashes, code)."""
    from engine.analysis.rundiff import diff_text

    found = call(ctx, "run_diff", left=left, right=right)
    click.echo(json.dumps(found) if as_json else diff_text(found["left"], found["right"], found["rows"],
                                                           found["same"]))


@cli.command()
@click.argument("run_ref", metavar="RUN")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output until the run ends.")
@click.option("--stream", type=click.Choice(["both", "stdout", "stderr"]), default="both", show_default=True)
@click.pass_context
def logs(ctx: click.Context, run_ref: str, follow: bool, stream: str) -> None:
    """Print a run's stdout and stderr logs (from its run folder)."""
    with connect(ctx) as client:
        run_info = client.request("run", id=run_ref)
        run_dir = Path(run_info["run_dir"] or workspace(ctx).run_dir(run_info["id"]))
        names = ["stdout.log", "stderr.log"] if stream == "both" else [f"{stream}.log"]
        offsets = {name: 0 for name in names}
        pump_logs(run_dir, offsets)
        try:
            while follow and run_info["state"] not in TERMINAL:
                time.sleep(0.5)
                pump_logs(run_dir, offsets)
                run_info = client.request("run", id=run_info["id"])
        except KeyboardInterrupt:
            sys.exit(130)
        pump_logs(run_dir, offsets)


def pump_logs(run_dir: Path, offsets: dict[str, int]) -> None:
    for name, offset in offsets.items():
        try:
            with open(run_dir / name, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            continue
        offsets[name] = offset + len(data)
        if data:
            sys.stdout.write(data.decode("utf-8", "replace"))
            sys.stdout.flush()


# -- SQL ------------------------------------------------------------------------------------------
FILE_FORMATS = ("parquet", "arrow")
"""`tix sql` formats that keep DuckDB's types and write the whole result to a file."""


@cli.command()
@click.argument("query")
@click.option("--format", "fmt", type=click.Choice((*FORMATS, *FILE_FORMATS)), default="table",
              show_default=True,
              help="parquet / arrow (an Arrow IPC file) keep DuckDB's types and write every row to -o FILE.")
@click.option("--max-rows", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Rows to fetch at most (the text formats).")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write to FILE instead of stdout (parquet and arrow need it).")
@click.pass_context
def sql(ctx: click.Context, query: str, fmt: str, max_rows: int, output: str | None) -> None:
    """Run a read-only SQL query on the database (`-` reads it from stdin)."""
    if query == "-":
        query = sys.stdin.read()
    if fmt in FILE_FORMATS:
        if not output:
            raise Failure(f"--format {fmt} writes a file: add -o FILE", 2)
        rows = write_result(ctx, query, fmt, Path(output).resolve())
        click.echo(f"{rows} row{'s' if rows != 1 else ''} written to {output}")
        return
    result = call(ctx, "sql", query=query, max_rows=max_rows)
    text = FORMATTERS[fmt](result["columns"], result["rows"])
    if output:
        Path(output).write_text(text if fmt == "csv" else text + "\n")
    else:
        click.echo(text, nl=fmt != "csv")
    if result["truncated"]:
        click.echo(f"(first {max_rows} rows shown; raise --max-rows for more)", err=True)


def write_result(ctx: click.Context, query: str, fmt: str, path: Path) -> int:
    """A query's whole result in `path`: Parquet by the daemon's COPY (the `sql_export` op), Arrow
    from the daemon's Arrow stream, batch by batch into a temporary file renamed at the end (never
    the whole result in memory, never half a file under the name asked for). Rows written."""
    if fmt == "parquet":
        return int(call(ctx, "sql_export", query=query, path=str(path), format="parquet")["rows"])
    import pyarrow.ipc as ipc

    partial = path.with_name(f".{path.name}.partial")
    rows = 0
    try:
        with connect(ctx) as client:
            reader = client.stream("sql_arrow", query=query)
            with ipc.new_file(str(partial), reader.schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)
                    rows += batch.num_rows
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return rows


render_table = tables.table
text_cell = tables.cell


def _counted_table(columns: list[str], rows: list[list[Any]]) -> str:
    """The human table: floats as a person reads them (`58`, not `57.99999999999999`); csv and
    json keep every digit for programs."""
    shown = [[tables.readable_number(v) if isinstance(v, float) else v for v in row] for row in rows]
    return tables.table(columns, shown) + f"\n({len(rows)} row{'s' if len(rows) != 1 else ''})"


FORMATTERS: dict[str, Callable[[list[str], list[list[Any]]], str]] = {
    "table": _counted_table,
    **{f: (lambda c, r, f=f: tables.render(c, r, f)) for f in ("csv", "md", "latex", "json")},
}


def query_rows(client: Client, query: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    """Rows of a read-only query over the daemon, as dicts."""
    result = client.request("sql", query=query, params=params or [], max_rows=10_000_000)
    return [dict(zip(result["columns"], r, strict=True)) for r in result["rows"]]


def where(filters: dict[str, Any]) -> tuple[str, list[Any]]:
    """` WHERE a = ? AND ...` for the filters that are set (column names are trusted)."""
    used = {k: v for k, v in filters.items() if v is not None}
    sql_text = " AND ".join(f"{k} = ?" for k in used)
    return (f" WHERE {sql_text}" if used else ""), list(used.values())


def check_experiment(client: Client, experiment: str | None) -> None:
    """A named experiment that does not exist is an input error (exit 2), not an empty table."""
    if experiment is None:
        return
    names = [r["name"] for r in query_rows(client, "SELECT name FROM experiments ORDER BY name")]
    if experiment not in names:
        known = ", ".join(names) or "none yet"
        raise Failure(f"no experiment named {experiment!r} (experiments: {known})", 2)


def emit(columns: list[str], rows: list[list[Any]], fmt: str, empty: str, digits: int | None = None,
         note: str | None = None) -> None:
    """Print rows in `fmt`; `empty` says why there are none (stderr, so csv and json stay clean)."""
    if not rows and fmt in ("table", "md", "latex"):
        click.echo(empty, err=True)
        return
    click.echo(tables.render(columns, rows, fmt, digits), nl=fmt != "csv")
    if note and fmt in ("table", "md"):
        click.echo(("\n" if fmt == "md" else "") + note)


FORMAT_OPTION = click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
                             show_default=True, help="Output format (md: Markdown, latex: booktabs).")


# -- analytics: TI, imports, shift, flips, output health ------------------------------------------
@cli.command("ti")
@click.argument("experiment", required=False)
@click.option("--variant", type=click.Choice(["v1", "v2"]),
              help="TI variant (default: the experiment file's ti.variant, else v2).")
@click.option("--sigma", help="v2's sigma: pooled (default), per-model or math=V,other=V,non=V.")
@click.option("--benchmarks", "detail", is_flag=True,
              help="Per-benchmark deltas with their 95% CI, p and q instead of one row per model.")
@click.option("--boot", type=click.IntRange(min=0), default=2000, show_default=True, metavar="N",
              help="Bootstrap replicates of the TI's 95% intervals (fixed seed; 0: no intervals).")
@FORMAT_OPTION
@click.pass_context
def ti_command(ctx: click.Context, experiment: str | None, variant: str | None, sigma: str | None,
               detail: bool, boot: int, fmt: str) -> None:
    """Transferability Index of every tuned model against its base (all experiments by default),
    with 95% intervals from a paired item bootstrap."""
    from engine.analysis import ti as ti_mod

    try:
        sigma_value = ti_mod.parse_sigma(sigma) if sigma is not None else None
    except ValueError as exc:
        raise Failure(str(exc), 2) from None
    done = call(ctx, "ti", experiment=experiment, variant=variant, sigma=sigma_value, boot=boot)
    for warning in done["warnings"]:
        click.echo(f"tix: warning: {warning}", err=True)
    print_ti(ti_mod, done["results"], fmt, detail, experiment)


def print_ti(ti_mod: Any, results: list[dict[str, Any]], fmt: str, detail: bool,
             experiment: str | None) -> None:
    """JSON objects as the daemon computed them, or rows in the shared formats."""
    if fmt == "json":
        click.echo(tables.dumps(results))
        return
    empty = (f"no tuned model with scores against its base{f' in {experiment}' if experiment else ''} "
             "(scores come from eval runs or `tix import scores`)")
    if detail:
        columns, rows = ti_mod.detail_table(results, fmt)
        emit(columns, rows, fmt, empty, digits=3, note=ti_mod.DETAIL_NOTE)
        return
    columns, rows = ((ti_mod.CSV_COLUMNS, ti_mod.csv_rows(results)) if fmt == "csv"
                     else (ti_mod.HUMAN_COLUMNS, ti_mod.human_rows(results)))
    emit(columns, rows, fmt, empty, digits=1, note="\n".join(ti_mod.notes(results)) or None)


@cli.group("import")
def import_group() -> None:
    """Import published results so they can be compared with no GPU (see `tix ti`), or a
    collaborator's bundle (`tix export`)."""


@import_group.command("scores")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--experiment", "-e", required=True, help="Experiment to file the scores under.")
@click.pass_context
def import_scores(ctx: click.Context, file: str, experiment: str) -> None:
    """Import a CSV with columns model, base_model, method, benchmark, group, score (percent).

    The file replaces the experiment's earlier imported rows, so importing it again stores it once.
    """
    from engine.analysis.imports import ImportErrors, read_scores_csv

    check_name(experiment)
    try:
        table = read_scores_csv(Path(file))
    except ImportErrors as exc:
        refuse(file, exc.lines)
    store_import(ctx, table.request(experiment, str(Path(file).resolve()), True))


@import_group.command("lm-eval")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--experiment", "-e", required=True, help="Experiment to file the scores under.")
@click.option("--model", "-m", required=True, help="Name of the model the results belong to.")
@click.option("--base-model", help="Its base model (imported or evaluated in the experiment); none: a base.")
@click.option("--method", help="How it was tuned (sft, rl, ...).")
@click.option("--group", "groups", multiple=True, metavar="TASK=GROUP",
              help="Group (math, other, non) of a task the registry does not know. Repeatable.")
@click.option("--metric", help="lm-eval metric key to read, e.g. 'exact_match,strict-match'.")
@click.pass_context
def import_lm_eval(ctx: click.Context, file: str, experiment: str, model: str, base_model: str | None,
                   method: str | None, groups: tuple[str, ...], metric: str | None) -> None:
    """Import one model's lm-evaluation-harness results JSON (fractions become percent).

    Replaces that model's earlier imported rows in the experiment.
    """
    from engine.analysis.imports import ImportErrors, parse_group_options, read_lm_eval

    check_name(experiment)
    if base_model == model:
        raise Failure(f"--base-model {base_model!r} is the model itself", 2)
    try:
        table = read_lm_eval(Path(file), model, base_model, method, parse_group_options(groups), metric)
    except ValueError as exc:
        raise Failure(str(exc), 2) from None
    except ImportErrors as exc:
        refuse(file, exc.lines)
    store_import(ctx, table.request(experiment, str(Path(file).resolve()), False))


@import_group.command("bundle")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--as", "name", metavar="NAME",
              help="Store the experiment under NAME (this workspace has another experiment of its name).")
@click.pass_context
def import_bundle(ctx: click.Context, folder: str, name: str | None) -> None:
    """Bring a bundle written by `tix export` into this workspace, beside its own results.

    Run ids are kept; runs this workspace already has are kept as they are, so importing twice
    stores nothing twice. An experiment name used here for a different experiment is refused."""
    if name is not None:
        check_name(name)
    done = call(ctx, "import_bundle", path=str(Path(folder).resolve()), name=name)
    rows = done["rows"]
    counts = ", ".join(f"{rows[k]} {label}" for k, label in BUNDLE_COUNTS)
    click.echo(f"imported bundle {folder} as experiment {done['experiment']}: {done['runs']} new runs "
               f"({done['runs_present']} already here), {counts}; see `tix ti {done['experiment']}`")


BUNDLE_COUNTS = (("samples", "samples"), ("scores", "scores"), ("metrics", "metric points"),
                 ("shift_results", "shift results"), ("imported_scores", "imported scores"))


@cli.command("export")
@click.argument("experiment")
@click.argument("folder", type=click.Path(file_okay=False))
@click.pass_context
def export_bundle(ctx: click.Context, experiment: str, folder: str) -> None:
    """Write EXPERIMENT's results to FOLDER (new or empty) to share: its runs, scores, samples,
    metrics, shift results and imported scores as Parquet, the experiment file, its TI table (md,
    csv) and a README on loading them with duckdb, pandas or polars (`tix import bundle FOLDER`)."""
    done = call(ctx, "export_bundle", experiment=experiment, path=str(Path(folder).resolve()))
    tables = done["tables"]
    counts = ", ".join(f"{tables[k]} {label}" for k, label in BUNDLE_COUNTS)
    click.echo(f"exported {experiment} to {done['path']}: {tables['runs']} runs, {counts} "
               "(README.md there says how to load it)")


def check_name(experiment: str) -> None:
    from engine.analysis.imports import check_experiment_name

    problem = check_experiment_name(experiment)
    if problem:
        raise Failure(problem, 2)


def refuse(file: str, lines: list[str]) -> None:
    """Print every problem of a refused file (one line each) and exit 2; nothing was stored."""
    for line in lines:
        click.echo(line, err=True)
    plural = "s" if len(lines) != 1 else ""
    raise Failure(f"{file}: {len(lines)} problem{plural}; nothing imported", 2)


def store_import(ctx: click.Context, request: dict[str, Any]) -> None:
    done = call(ctx, "import_scores", **request)
    replaced = f" (replacing {done['replaced']} earlier rows)" if done["replaced"] else ""
    click.echo(f"imported {done['models']} models, {done['scores']} scores into experiment "
               f"{request['experiment']}{replaced}; see `tix ti {request['experiment']}`")


SHIFT_COLUMNS = ["experiment", "model", "base_model", "scope", "benchmark", "group", "pca_d", "logp_diff",
                 "kl", "rank_shift", "share_base_rank1", "share_base_rank2_3", "share_base_rank_gt3",
                 "tokens"]
TOP_COLUMNS = ["experiment", "model", "benchmark", "group", "rank", "token", "count", "mean_base_rank"]


@cli.command()
@click.argument("experiment", required=False)
@click.option("--model", "-m", help="Only this tuned model.")
@click.option("--benchmark", "-b", help="Only this benchmark.")
@click.option("--top-tokens", type=click.IntRange(min=1), metavar="N",
              help="Instead: the N tokens each model shifted most often (per benchmark or group).")
@FORMAT_OPTION
@click.pass_context
def shift(ctx: click.Context, experiment: str | None, model: str | None, benchmark: str | None,
          top_tokens: int | None, fmt: str) -> None:
    """PCA shift (d) and token shift of each tuned model against its base, per benchmark and group."""
    clause, params = where({"experiment": experiment, "model": model, "benchmark": benchmark})
    if top_tokens:
        clause += (" AND" if clause else " WHERE") + " rank <= ?"
        params.append(top_tokens)
        query = f"SELECT {cols(TOP_COLUMNS)} FROM token_shift_top{clause} ORDER BY 1, 2, 4, 3, 5"
    else:
        query = (f"SELECT {cols(SHIFT_COLUMNS)} FROM shift_summary{clause} "
                 "ORDER BY experiment, model, scope DESC, \"group\", benchmark")
    with connect(ctx) as client:
        check_experiment(client, experiment)
        rows = query_rows(client, query, params)
    columns = TOP_COLUMNS if top_tokens else SHIFT_COLUMNS
    emit(columns, [[r[c] for c in columns] for r in rows], fmt,
         "no shift results (analyse runs write them: `tix run FILE --only analyse`)", digits=3)


def cols(names: list[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


FLIP_COLUMNS = ["experiment", "model", "base_model", "benchmark", "items", "gained", "lost", "net",
                "mcnemar_p", "gained_items", "lost_items"]
FLIP_ITEM_COLUMNS = ["experiment", "model", "base_model", "benchmark", "item_id", "change", "base_verdict",
                     "model_verdict"]


@cli.command()
@click.argument("experiment", required=False)
@click.option("--model", "-m", help="Only this tuned model.")
@click.option("--benchmark", "-b", help="Only this benchmark.")
@click.option("--items", is_flag=True, help="One row per flipped item instead of counts per benchmark.")
@FORMAT_OPTION
@click.pass_context
def flips(ctx: click.Context, experiment: str | None, model: str | None, benchmark: str | None,
          items: bool, fmt: str) -> None:
    """Items each tuned model gained and lost against its base (mean verdict >= 0.5 = correct), with
    McNemar's exact p where every item is one sample scored 0 or 1."""
    clause, params = where({"experiment": experiment, "model": model, "benchmark": benchmark})
    columns = FLIP_ITEM_COLUMNS if items else FLIP_COLUMNS
    view = "flips" if items else "flip_summary"
    order = "1, 2, 4, 6, 5" if items else "1, 2, 4"
    with connect(ctx) as client:
        check_experiment(client, experiment)
        rows = query_rows(client, f"SELECT {cols(columns)} FROM {view}{clause} ORDER BY {order}", params)
    out = [[r[c] for c in columns] for r in rows]
    if fmt not in ("json", "csv") and not items:
        out = [[*r[:-3], p_cell(r[-3]), ", ".join(r[-2] or []), ", ".join(r[-1] or [])] for r in out]
    emit(columns, out, fmt, "no items to compare (needs samples of a tuned model's and its base's eval runs)",
         digits=2)


def p_cell(value: float | None) -> str:
    """McNemar's p for a human; `-` where the items are not binary single samples."""
    from engine.analysis.ti import p_text

    return p_text(value)


HEALTH_COLUMNS = ["run_id", "model", "kind", "benchmark", "outputs", "pct_no_answer", "pct_truncated",
                  "pct_unclosed_think", "mean_tokens"]


@cli.command()
@click.argument("experiment", required=False)
@click.option("--benchmarks", is_flag=True, help="A row per benchmark too, not only per run.")
@FORMAT_OPTION
@click.pass_context
def health(ctx: click.Context, experiment: str | None, benchmarks: bool, fmt: str) -> None:
    """Output health per run: percent with no answer, cut off at the token limit, with an unclosed
    think block, and the mean length in tokens."""
    conditions, params = ([] if benchmarks else ["benchmark IS NULL"]), []
    if experiment:
        conditions.append("run_id IN (SELECT run_id FROM experiment_runs WHERE experiment = ?)")
        params.append(experiment)
    clause = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    query = (f"SELECT {cols(HEALTH_COLUMNS)} FROM output_health{clause} "
             "ORDER BY model, run_id, benchmark NULLS FIRST")
    with connect(ctx) as client:
        check_experiment(client, experiment)
        rows = query_rows(client, query, params)
    emit(HEALTH_COLUMNS, [[r[c] for c in HEALTH_COLUMNS] for r in rows], fmt,
         "no samples yet (eval and score runs record them)", digits=1)


# -- daemon ---------------------------------------------------------------------------------------
@cli.group()
def daemon() -> None:
    """Start, stop or inspect the daemon (clients start it on demand anyway)."""


@daemon.command("start")
@click.option("--foreground", is_flag=True, help="Run in this terminal (for systemd or debugging).")
@click.pass_context
def daemon_start(ctx: click.Context, foreground: bool) -> None:
    """Start the daemon if none is running."""
    ws = workspace(ctx)
    if foreground:
        from engine.daemon.server import main as server_main

        sys.exit(server_main(["--home", str(ws.home)]))
    if not daemon_running(ws):
        start_daemon(ws)
    info = call(ctx, "ping")
    click.echo(f"daemon running: pid {info['pid']}, {ws.socket}")


@daemon.command("stop")
@click.pass_context
def daemon_stop(ctx: click.Context) -> None:
    """Stop the daemon; running workers keep going and the next daemon adopts them."""
    ws = workspace(ctx)
    if not daemon_running(ws):
        click.echo("daemon not running")
        return
    with Client(ws, autostart=False) as client:
        info = client.request("shutdown")
    deadline = time.time() + 15
    while ws.socket.exists() and time.time() < deadline:
        time.sleep(0.05)
    click.echo(f"daemon stopped ({info['workers_left_running']} workers left running)")


@daemon.command("status")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def daemon_status(ctx: click.Context, as_json: bool) -> None:
    """Show the daemon's pid, uptime, clients, GPUs and run counts (exit 3 if it is not running);
    on Slurm also the cluster's partitions (sinfo) and tix's jobs there; on a box with GPUs, the
    processes on each GPU: tix's run (name, pid), then other users' (user, pid, memory, command)."""
    ws = workspace(ctx)
    try:
        with Client(ws, autostart=False, timeout=10) as client:
            info = client.request("ping")
            cluster = slurm_cluster(client) if info.get("executor") == "slurm" else None
            devices = local_gpus(client) if info.get("executor", "local") == "local" else None
    except (DaemonUnavailable, OSError):
        click.echo(json.dumps({"running": False}) if as_json else f"daemon not running ({ws.home})")
        sys.exit(3)
    if as_json:
        extra = {"slurm": cluster} if cluster else {"gpu_processes": devices} if devices else {}
        click.echo(json.dumps({"running": True, **info, **extra}))
        return
    runs = ", ".join(f"{n} {s}" for s, n in sorted(info["runs"].items())) or "no runs"
    where = f"{info['gpus']} GPU(s), {info['cpu_slots']} CPU slot(s)"
    if info.get("executor", "local") != "local":
        where = f"workers on {info['executor']}"
    click.echo(f"daemon running: pid {info['pid']} on {info['host']}, up {info['uptime']:.0f}s, "
               f"{info['clients']} client(s), {where}, idle exit after {info['idle_timeout']:.0f}s; "
               f"runs: {runs}")
    if cluster is not None:
        click.echo(slurm_report(cluster))
    if devices and devices.get("gpus"):
        click.echo(gpu_report(devices))


def local_gpus(client: Client) -> dict[str, Any] | None:
    """The `gpus` op's answer (GPUs and their processes), or None when the daemon refuses it."""
    try:
        return client.request("gpus")
    except RequestFailed:
        return None


_CONTROLS = str.maketrans({c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)]})


def gpu_report(info: dict[str, Any]) -> str:
    """Per GPU, as nvitop lists it: tix's runs (name, pid), then other users' processes (user,
    pid, memory, command); a GPU other users fill is marked as one tix does not hand out."""
    rows: list[list[Any]] = []
    for gpu in info["gpus"]:
        rows += gpu_process_rows(gpu)
    limit = info.get("foreign_gpu_mib")
    lines = ["", render_table(["GPU", "pid", "user", "GPU mem", "run / command"], rows)]
    if info.get("processes_error"):
        lines.append(f"NVML: {info['processes_error']}".translate(_CONTROLS))
    elif info.get("processes_age") is None:
        lines.append("processes: not listed (no NVML on the daemon's box)")
    blocked = [str(g["index"]) for g in info["gpus"] if g.get("blocked")]
    if blocked:
        lines.append(f"not handed out: GPU {', '.join(blocked)} (other users hold more than "
                     f"foreign_gpu_mib = {limit:.0f} MiB)")
    return "\n".join(lines)


def gpu_process_rows(gpu: dict[str, Any]) -> list[list[Any]]:
    """One GPU's rows: its name, tix's runs, then the processes that are not tix's."""
    def mib(n: int | None) -> str:
        return "?" if n is None else f"{n / (1 << 20):.0f} MiB"

    index = str(gpu["index"]) + (" (not scheduled)" if not gpu.get("scheduled") else "")
    procs = gpu.get("processes") or []
    name = f"{gpu.get('name') or '?'} ({mib(gpu.get('mem_used'))} of {mib(gpu.get('mem_total'))} used)"
    rows = [[index, "", "", "", name.translate(_CONTROLS)]]
    for run in gpu.get("runs") or []:
        used = [p["used"] for p in procs if p.get("run") == run["id"] and p.get("used") is not None]
        rows.append(["", run.get("pid") or "-", "tix", mib(sum(used)) if used else "-",
                     f"run {run['id']} {run.get('experiment') or '-'}/{run.get('name') or '-'}"])
    held = {r["id"] for r in gpu.get("runs") or []}
    for p in procs:
        if p.get("run") in held:
            continue
        what = f"tix run {p['run']} (ended)" if p.get("run") else p.get("command") or "?"
        rows.append(["", p["pid"], str(p.get("user")).translate(_CONTROLS), mib(p.get("used")),
                     what[:80].translate(_CONTROLS)])
    if len(rows) == 1:
        rows[0][4] += ": free"
    return rows


def slurm_cluster(client: Client) -> dict[str, Any]:
    """The daemon's view of the cluster (the `gpus` op on Slurm); a refusal becomes its `error`."""
    try:
        return client.request("gpus")
    except RequestFailed as exc:
        return {"error": f"cannot ask the daemon about the cluster: {exc}"}


def slurm_report(cluster: dict[str, Any]) -> str:
    """Partitions, the cluster's totals (each node once) and tix's own jobs, under the status line."""
    lines = [cluster["error"]] if cluster.get("error") else []
    if cluster.get("partitions"):
        total = cluster["totals"]
        lines += ["", render_table(["partition", "avail", "nodes", "state", "GPUs free/total"],
                                   [partition_row(p) for p in cluster["partitions"]]),
                  f"cluster: {total['nodes']} node(s), {total['gpus_used']} of {total['gpus']} GPU(s) used, "
                  f"{total['gpus_free']} free"]
    jobs = [[j["run"], j["job_id"], (j["slurm_state"] or j["state"] or "?").lower(),
             j["node"] or j["reason"] or "-"] for j in cluster.get("jobs") or []]
    if not jobs:
        return "\n".join([*lines, "tix jobs: none in the cluster"])
    return "\n".join([*lines, "", "tix jobs:", render_table(["run", "job", "state", "node / reason"], jobs)])


def partition_row(part: dict[str, Any]) -> list[Any]:
    """sinfo's way: the default partition with a `*`; free GPUs are those a job could get now."""
    return [part["name"] + ("*" if part["default"] else ""), part["avail"], part["nodes"],
            node_states(part["states"]), f"{part['gpus_free']}/{part['gpus']}"]


def node_states(states: dict[str, int]) -> str:
    """`mix` when every node shares it, else `2 idle, 1 mix`."""
    if len(states) == 1:
        return next(iter(states))
    return ", ".join(f"{n} {state}" for state, n in states.items())


def main(argv: list[str] | None = None) -> None:
    """Console entry point: maps usage, daemon and connection errors to one-line messages."""
    try:
        code = cli.main(args=argv, prog_name="tix", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except click.UsageError as exc:
        where = f"{exc.ctx.command_path}: " if exc.ctx else ""
        click.echo(f"tix: error: {where}{exc.format_message()} (see -h)", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("tix: aborted", err=True)
        sys.exit(1)
    except RequestFailed as exc:
        click.echo(f"tix: error: {exc}", err=True)
        sys.exit(2 if exc.code in INPUT_ERRORS else 1)
    except DaemonUnavailable as exc:
        click.echo(f"tix: error: {exc}", err=True)
        sys.exit(1)
    except BrokenPipeError:
        sys.exit(0)
    except TimeoutError:  # a daemon that is alive but does not answer (stopped, or stuck)
        click.echo("tix: error: the daemon did not answer in time (stopped or overloaded?); see "
                   "`tix daemon status` and daemon.log in the workspace", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
