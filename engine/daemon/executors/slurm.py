"""Slurm executor: each attempt of a run is one batch job running the worker command used locally.

The daemon stays where it is (a login node, or any node that shares the filesystem with the
compute nodes) and keeps doing everything else: the DAG, ingest, the socket. Only these commands
touch Slurm, each with a timeout and never on the daemon's event loop (a small thread pool runs
them; the scheduler only reads what they found):

- `sbatch --parsable` of `RUN_DIR/job.sh` (exports, the `setup:` lines, then `exec python -m
  engine.jobs.worker RUN_DIR`), stdout and stderr appended to the run folder's stdout.log and
  stderr.log as locally;
- one `squeue -h -t all -j ID,ID,... -o ...` per tick for every job tix watches; a job that has
  left squeue is looked up with `scontrol show job -o ID`, then with `sacct` where it is installed
  and works (it needs slurmdbd: without it, it fails at once and is not asked again);
- `scancel --signal=TERM --full ID` to cancel (the worker writes its `failed` event and exits),
  `scancel ID` after the cancel grace, and at once for a job still waiting (`--signal` on a
  pending job blocks until the job starts).

Slurm states in tix: PENDING, CONFIGURING, REQUEUED... -> `queued`, the Reason (Resources,
Priority, QOSMaxJobsPerUserLimit...) in the run's `reason`; RUNNING, COMPLETING, SUSPENDED ->
`running`; COMPLETED -> what the worker's final event says (none: `failed`); FAILED, TIMEOUT,
OUT_OF_MEMORY, NODE_FAIL, PREEMPTED, BOOT_FAIL, DEADLINE -> `failed` within the run's retries,
with the state and reason in `reason` and the error; CANCELLED (by someone else) -> `cancelled`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from engine.daemon.executors.base import JobStatus, Launch, SubmitError
from engine.daemon.executors.local import mark_attempt
from engine.daemon.settings import SlurmSettings
from engine.events import STDERR_FILE, STDOUT_FILE

log = logging.getLogger("tix.daemon.slurm")

SCRIPT_FILE = "job.sh"
SUBMIT_TIMEOUT = 60.0
QUERY_TIMEOUT = 20.0
CANCEL_TIMEOUT = 10.0
SQUEUE_FORMAT = "%i|%T|%r|%N|%L"
#: Job states of a job that has not started its script yet.
WAITING = frozenset({"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"})
#: squeue's -t for jobs of an attempt that may still run (requeued ones included).
LIVE_STATES = "PENDING,CONFIGURING,RUNNING,SUSPENDED,REQUEUED,REQUEUE_HOLD,COMPLETING"
#: States of a job whose script runs (or is being cleaned up); every other state has ended.
ACTIVE = frozenset({"RUNNING", "COMPLETING", "SUSPENDED", "SIGNALING", "STAGE_OUT", "RESIZING", "STOPPED"})


class CommandError(Exception):
    """A Slurm command failed; the message is its own first error line."""


class SlurmHandle:
    """One batch job: its id once sbatch answered (sbatch runs in the background)."""

    def __init__(self, job_id: str | None = None, submission: Future[str] | None = None,
                 grace: int | None = None, steps: bool = False) -> None:
        self.job_id = job_id
        self.submission = submission
        self.refused: str | None = None
        self.grace = grace
        """The job's --signal=B:TERM@grace (None for an adopted job: the settings' default)."""
        self.steps = steps
        """The worker srun's job steps (`train.nodes`): a cancel TERMs only the worker, which passes
        it to the steps itself (srun kills its tasks at once when it gets TERM)."""

    def columns(self) -> dict[str, Any]:
        return {"job_id": self.job_id}

    def resolve(self, timeout: float = 0) -> str | None:
        """The job id once sbatch returned (waiting up to `timeout` s); a refusal lands in `refused`."""
        if self.job_id is None and self.submission is not None and self.refused is None:
            try:
                self.job_id = self.submission.result(timeout=timeout)
            except TimeoutError:
                return None
            except SubmitError as exc:
                self.refused = str(exc)
        return self.job_id


class SlurmExecutor:
    """Runs workers as Slurm batch jobs; see the module docstring."""

    name = "slurm"
    assigns_gpus = False
    requeues = True

    def __init__(self, settings: SlurmSettings, python: str = sys.executable) -> None:
        self.settings = settings
        self.final_wait = settings.final_wait
        self.python = python
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="tix-slurm")
        self._query: Future[dict[str, JobStatus]] | None = None
        self._asked_at = 0.0
        self._known: dict[str, JobStatus] = {}
        self._sacct = shutil.which("sacct") is not None
        self._last_warning = ("", 0.0)

    # -- submitting ------------------------------------------------------------------------
    def submit(self, launch: Launch) -> SlurmHandle:
        """Write the job script and start sbatch in the background; refusals come back in `status`."""
        settings = job_settings(launch, self.settings)
        argv = sbatch_argv(launch, settings)
        script = write_script(launch, settings, argv, self.python)
        for name in (STDOUT_FILE, STDERR_FILE):
            with open(launch.run_dir / name, "ab") as stream:
                mark_attempt(stream, launch.attempt)
        env = submit_env(launch.env)
        return SlurmHandle(submission=self._pool.submit(run_sbatch, [*argv, str(script)], env),
                           grace=settings.signal_grace, steps=launch.nodes is not None)

    def adopt(self, run: dict[str, Any]) -> SlurmHandle:
        return SlurmHandle(job_id=run.get("job_id"), steps=bool((run.get("params") or {}).get("nodes")))

    def find_submitted(self, run: dict[str, Any]) -> SlurmHandle | None:
        """The run's job of its current attempt still waiting or running, found by its name and
        comment (`tix-<run id>`, `tix-attempt-N`); None when there is none or Slurm cannot say."""
        try:
            out = run_cmd(["squeue", "-h", f"--name=tix-{run['id']}", "-t", LIVE_STATES, "-o", "%i|%k"],
                          QUERY_TIMEOUT)
        except CommandError as exc:
            self._warn(f"squeue failed looking for run {run['id']}'s job: {exc}")
            return None
        wanted = attempt_comment(int(run["attempt"] or 0))
        rows = (line.partition("|") for line in out.split())
        found = [job for job, _, comment in rows if comment == wanted]
        return self.adopt({**run, "job_id": found[0]}) if found else None

    def interruption(self, handle: SlurmHandle, last: JobStatus, ended: JobStatus) -> str:
        """Why Slurm sent TERM: a time limit (the job ended TIMEOUT, or had about `grace` s left when
        last asked), a preemption or node failure (its end state), else whatever its end state says."""
        grace = handle.grace if handle.grace is not None else self.settings.signal_grace
        if ended.state == "TIMEOUT":
            return f"Slurm's time limit (job {handle.job_id} TIMEOUT)"
        if ended.state == "PREEMPTED":
            return f"Slurm preempted job {handle.job_id}"
        if ended.state == "NODE_FAIL":
            return f"job {handle.job_id}'s node failed (NODE_FAIL)"
        slack = 30 + self.settings.poll_interval + 5  # Slurm checks limits every 30 s; our poll lags
        if last.time_left is not None and last.time_left <= grace + slack:
            return (f"Slurm's time limit was near (--signal=B:TERM@{grace}; {last.time_left:.0f} s left "
                    "when last asked)")
        return f"SIGTERM from Slurm or scancel (job {handle.job_id} then ended {ended.state or 'unknown'})"

    # -- watching --------------------------------------------------------------------------
    def poll(self, handles: Sequence[SlurmHandle]) -> None:
        """Take the last query's answer and start the next one: one squeue for all jobs, at most
        every `poll_interval` s (a shared controller serves many users)."""
        if self._query is not None and self._query.done():
            self._known.update(self._query.result())
            self._query = None
        ids = sorted({h.job_id for h in handles if h.resolve() is not None})
        self._known = {i: s for i, s in self._known.items() if i in ids}
        due = time.monotonic() - self._asked_at >= self.settings.poll_interval
        if ids and self._query is None and due:
            self._asked_at = time.monotonic()
            self._query = self._pool.submit(self.query, ids)

    def status(self, handle: SlurmHandle) -> JobStatus:
        job_id = handle.resolve()
        if handle.refused:
            return JobStatus(alive=False, started=False, state="REFUSED", error=handle.refused)
        if job_id is None and handle.submission is None:
            return JobStatus(alive=False, started=False, error="no Slurm job id was stored for this run")
        if job_id is None or job_id not in self._known:
            return JobStatus(alive=True, started=False)  # being submitted, or not asked about yet
        return self._known[job_id]

    def query(self, ids: list[str]) -> dict[str, JobStatus]:
        """Every job's state (in a pool thread); jobs nobody could tell about are left out."""
        try:
            return self._ask_or_raise(ids)
        except Exception as exc:  # noqa: BLE001 - a failed poll must not stop the next one
            self._warn(f"slurm poll failed: {type(exc).__name__}: {exc}")
            return {}

    def _ask_or_raise(self, ids: list[str]) -> dict[str, JobStatus]:
        try:
            out = run_cmd(["squeue", "-h", "-t", "all", "-j", ",".join(ids), "-o", SQUEUE_FORMAT],
                          QUERY_TIMEOUT)
        except CommandError as exc:
            if "Invalid job id" not in str(exc):  # a single id squeue no longer knows is rc 1
                self._warn(f"squeue failed: {exc}")
                return {}
            out = ""
        found = parse_squeue(out)
        for job_id in ids:
            if job_id not in found and (gone := self._lookup_gone(job_id)) is not None:
                found[job_id] = gone
        return found

    def _lookup_gone(self, job_id: str) -> JobStatus | None:
        """A job squeue has dropped: scontrol keeps it MinJobAge s, sacct (with slurmdbd) for good."""
        try:
            fields = parse_scontrol(run_cmd(["scontrol", "show", "job", "-o", job_id], QUERY_TIMEOUT))
            return job_status(job_id, fields.get("JobState"), fields.get("Reason"), fields.get("NodeList"))
        except CommandError as exc:
            if "Invalid job id" not in str(exc):
                self._warn(f"scontrol failed: {exc}")
                return None
        found = self._from_sacct(job_id)
        asked = "squeue, scontrol and sacct" if self._sacct else "squeue and scontrol (no working sacct)"
        return found or JobStatus(alive=False, state="VANISHED",
                                  error=f"slurm job {job_id} vanished: unknown to {asked}")

    def _from_sacct(self, job_id: str) -> JobStatus | None:
        if not self._sacct:
            return None
        try:
            out = run_cmd(["sacct", "-n", "-P", "-X", "-j", job_id, "-o", "State,Reason,NodeList"],
                          QUERY_TIMEOUT)
        except CommandError as exc:
            self._sacct = False
            log.info("sacct does not work here (%s); not asking it again", exc)
            return None
        rows = [line.split("|") for line in out.splitlines() if line.count("|") == 2]
        return job_status(job_id, *rows[0]) if rows else None

    # -- stopping --------------------------------------------------------------------------
    def terminate(self, handle: SlurmHandle) -> None:
        self._pool.submit(self._cancel, handle, True)

    def kill(self, handle: SlurmHandle) -> None:
        self._pool.submit(self._cancel, handle, False)

    def _cancel(self, handle: SlurmHandle, graceful: bool) -> None:
        """TERM to every process of a running job (it checkpoints and writes its event), or to its
        worker alone when the worker runs srun steps (`--batch`), else scancel."""
        job_id = handle.resolve(timeout=SUBMIT_TIMEOUT)
        if job_id is None:
            return
        known = self._known.get(job_id)
        try:
            if graceful and known is not None and known.started:
                with contextlib.suppress(CommandError):  # pending again (requeued)? plain scancel
                    run_cmd(["scancel", "--signal=TERM", "--batch" if handle.steps else "--full", job_id],
                            CANCEL_TIMEOUT)
                    return
            run_cmd(["scancel", job_id], CANCEL_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - a pool thread: log, the next cancel step retries
            self._warn(f"scancel {job_id} failed: {exc}")

    def close(self) -> None:
        """Jobs outlive the daemon; only the pool's queued work is dropped."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _warn(self, message: str) -> None:
        """Log a warning, the same one at most once a minute (a down controller fails every tick)."""
        last, when = self._last_warning
        if message != last or time.time() - when > 60:
            log.warning("%s", message)
            self._last_warning = (message, time.time())


# -- the sbatch command and the job script ----------------------------------------------------
def job_settings(launch: Launch, s: SlurmSettings) -> SlurmSettings:
    """The settings of one run's job: the daemon's, then the run's overrides from its experiment
    file. A run that cannot be submitted is refused here, before anything is written."""
    most = s.gpus_per_node
    if most is not None and launch.gpus > most:
        raise SubmitError(f"needs {launch.gpus} GPUs; slurm.gpus_per_node is {most}")
    try:
        return s.merged(launch.slurm, f"run {launch.run_id}")
    except ValueError as exc:
        raise SubmitError(str(exc)) from None


def sbatch_argv(launch: Launch, s: SlurmSettings) -> list[str]:
    """The sbatch command of one attempt, without the script; `tix check --plan` prints it (with
    `s` from `job_settings`, as the executor submits it)."""
    folder = str(launch.run_dir).replace("%", "%%")  # sbatch expands %j etc. in --output
    gpu = launch.gpus > 0
    options = {"partition": s.partition if gpu or not s.cpu_partition else s.cpu_partition,
               "account": s.account, "qos": s.qos, "time": s.time, "constraint": s.constraint,
               "cpus-per-gpu": s.cpus_per_gpu if gpu else None, "mem-per-gpu": s.mem_per_gpu if gpu else None}
    argv = ["sbatch", "--parsable", f"--job-name=tix-{launch.run_id}",
            f"--comment={attempt_comment(launch.attempt)}", f"--chdir={launch.run_dir}",
            f"--output={folder}/{STDOUT_FILE}", f"--error={folder}/{STDERR_FILE}", "--open-mode=append",
            f"--signal=B:TERM@{s.signal_grace}", "--requeue", f"--gpus-per-node={launch.gpus}"]
    if launch.nodes is not None:  # one task per node: the worker srun's one launcher on each
        argv[-1:-1] = [f"--nodes={launch.nodes}", "--ntasks-per-node=1"]
    argv += [f"--{key}={value}" for key, value in options.items() if value is not None]
    if s.exclusive:
        argv.append("--exclusive")
    return argv + list(s.extra_args)


def write_script(launch: Launch, s: SlurmSettings, argv: list[str], python: str) -> Path:
    """RUN_DIR/job.sh: the worker's environment, the setup lines, then the worker itself (exec'd,
    so Slurm's signals reach it directly)."""
    path = launch.run_dir / SCRIPT_FILE
    lines = ["#!/bin/bash",
             f"# tix run {launch.run_id}, attempt {launch.attempt}; the tix daemon submitted it with",
             f"#   {shlex.join([*argv, str(path)])}",
             "# The worker writes only this folder; the daemon tails events.jsonl and samples.jsonl.",
             "set -e",
             *(f"export {key}={shlex.quote(value)}" for key, value in sorted(launch.env.items())),
             *s.setup,
             f"exec {shlex.quote(python)} -m engine.jobs.worker {shlex.quote(str(launch.run_dir))}"]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o755)
    return path


def attempt_comment(attempt: int) -> str:
    """The job's --comment: which attempt of its run it is, so a new daemon can tell whether the
    job it finds by name belongs to the attempt its database knows."""
    return f"tix-attempt-{attempt}"


def submit_env(extra: dict[str, str]) -> dict[str, str]:
    """sbatch's environment (jobs inherit it): the daemon's, without its own GPU choice, plus `extra`."""
    env = dict(os.environ)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env.update(extra)
    return env


def run_sbatch(argv: list[str], env: dict[str, str]) -> str:
    """Submit; the job id, or a SubmitError carrying Slurm's own message on one line."""
    try:
        out = run_cmd(argv, SUBMIT_TIMEOUT, env)
    except CommandError as exc:
        raise SubmitError(f"could not submit to Slurm: {exc}") from None
    job_id = out.strip().split(";")[0]  # --parsable prints ID or ID;CLUSTER
    if not job_id.isdigit():
        raise SubmitError(f"could not submit to Slurm: sbatch printed no job id ({out.strip()[:200]!r})")
    return job_id


def run_cmd(argv: list[str], timeout: float, env: dict[str, str] | None = None) -> str:
    """A Slurm command's stdout; CommandError with its first error line when it fails."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise CommandError(f"{argv[0]} not found on PATH (executor slurm needs Slurm's commands)") from None
    except subprocess.TimeoutExpired:
        raise CommandError(f"{argv[0]} did not answer within {timeout:.0f}s") from None
    except OSError as exc:
        raise CommandError(f"{argv[0]}: {exc}") from None
    if done.returncode != 0:
        raise CommandError(first_error_line(done.stderr) or f"{argv[0]} exited with status {done.returncode}")
    return done.stdout


def first_error_line(text: str) -> str:
    """Slurm's own message: its first line that says error, else its first line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return next((line for line in lines if "error" in line.lower()), lines[0] if lines else "")


# -- reading Slurm's answers ------------------------------------------------------------------
def parse_squeue(out: str) -> dict[str, JobStatus]:
    """`squeue -o '%i|%T|%r|%N|%L'` lines -> job id: status."""
    found = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 5 and parts[0]:
            found[parts[0]] = job_status(*parts[:4], time_left=slurm_seconds(parts[4]))
    return found


def slurm_seconds(text: str | None) -> float | None:
    """Slurm's durations (`[days-]hours:minutes:seconds`, `minutes:seconds`) in seconds; None for
    UNLIMITED, NOT_SET, INVALID or anything else it may print."""
    days, _, clock = (text or "").strip().rpartition("-")
    parts = clock.split(":")
    if not all(p.isdigit() for p in parts) or not 2 <= len(parts) <= 3 or (days and not days.isdigit()):
        return None
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + int(part)
    return float(seconds + int(days or 0) * 86400)


def parse_scontrol(out: str) -> dict[str, str]:
    """`scontrol show job -o ID`: one line of Key=Value pairs (values here have no spaces)."""
    fields = {}
    for token in out.split():
        key, sep, value = token.partition("=")
        if sep and key not in fields:
            fields[key] = value
    return fields


def job_status(job_id: str, state: str | None, reason: str | None, node: str | None,
               time_left: float | None = None) -> JobStatus:
    """Slurm's state, reason and node list as a JobStatus (see the module docstring's mapping)."""
    word = (state or "UNKNOWN").split()[0].rstrip("+")  # sacct: "CANCELLED by 0"
    why = None if reason in (None, "", "None", "(null)") else reason
    where = None if node in (None, "", "(null)", "None assigned") else node
    if word in WAITING:
        return JobStatus(alive=True, started=False, state=word, reason=why)
    if word in ACTIVE:
        return JobStatus(alive=True, started=True, state=word, reason=why, node=where, time_left=time_left)
    error = f"slurm job {job_id} {word}" + (f", Reason={why}" if why else "")
    return JobStatus(alive=False, started=True, state=word, reason=why, node=where, error=error,
                     cancelled=word == "CANCELLED")
