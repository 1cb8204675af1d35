"""Pure text helpers shared by the screens: data made visible, durations, ETAs, progress bars,
sizes, state colours.

Kept free of Textual so they are cheap to test and to call for a thousand rows. Times from the
daemon are naive UTC text ("2025-03-14 10:42:00", as the runs table stores them); `now` is Unix
seconds, passed in so that tests and snapshots can fix the clock.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from rich.text import Text

from engine.analysis.report import SIGNIFICANT, readable_number

STATE_STYLES = {"queued": "cyan", "running": "bold yellow", "succeeded": "green", "failed": "bold red",
                "cancelled": "dim"}
STATES = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
_EIGHTHS = " ▏▎▍▌▋▊▉█"


# -- data shown as it is: control characters made visible -----------------------------------------
CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")
"""C0 controls, DEL and C1 controls: what a terminal acts on instead of printing."""
_PICTURES = {code: chr(0x2400 + code) for code in range(0x20)} | {0x7F: "\u2421"} | {
    code: f"\\x{code:02x}" for code in range(0x80, 0xA0)}
_ONE_LINE = str.maketrans(_PICTURES)
_LINES = str.maketrans({code: shown for code, shown in _PICTURES.items() if code not in (0x09, 0x0A)})


def visible(text: object, lines: bool = False) -> str:
    """`text` with every control character shown instead of obeyed: ESC as `␛`, CR `␍`, BS `␈`,
    BEL `␇`, NUL `␀` (the Unicode control pictures), DEL `␡`, a C1 control as `\\x9b`. Data (a
    model's output, a log, a name) could otherwise clear the screen, overwrite text, or make the
    terminal write the clipboard (OSC 52) or show a link (OSC 8); Rich drops only a few of them.
    `lines`: a multi-line view keeps newlines and tabs (a CR-LF ending is a newline); else a
    newline shows as `␊`, so one line stays one line."""
    text = str(text)
    if CONTROLS.search(text) is None:
        return text
    if lines:
        return text.replace("\r\n", "\n").translate(_LINES)
    return text.translate(_ONE_LINE)


def last_line(message: object) -> str:
    """A message's last line, visible (a traceback ends with its error): split at newlines only, so
    a CR inside the line is shown rather than hiding what came before it."""
    return visible(str(message).strip(), lines=True).split("\n")[-1]


def epoch(stamp: str | None) -> float | None:
    """Unix seconds of a naive-UTC timestamp text; None when absent or unreadable."""
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(str(stamp)).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def duration(seconds: float | None, short: bool = False) -> str:
    """Compact duration: 45s, 12m05s, 3h02m, 2d04h; `short` keeps it to 5 cells (52m, not 52m00s)."""
    if seconds is None or seconds < 0:
        return ""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if short and 600 <= s < 3600:
        return f"{s // 60}m"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if short or s >= 10 * 86400:
        return f"{s // 86400}d"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def run_seconds(run: dict[str, Any], now: float) -> float | None:
    """How long the run has run (to its end, or to `now` while running)."""
    start = epoch(run.get("started_at"))
    if start is None:
        return None
    end = epoch(run.get("finished_at")) if run.get("state") in TERMINAL else None
    return (end if end is not None else now) - start


ETA_FROM_PROGRESS = 0.10
"""A linear ETA is shown from 10 % done (before that, start-up dominates: a model load at 6 %
read as 5m32s), or from 2 % once the run has gone two minutes."""
ETA_FROM_SECONDS, ETA_MIN_PROGRESS = 120.0, 0.02


def eta_seconds(run: dict[str, Any], now: float) -> float | None:
    """Time left for a running run, from its progress so far (linear in the fraction done), once
    that is meaningful (see ETA_FROM_PROGRESS); None before."""
    progress = run.get("progress")
    if run.get("state") != "running" or not progress or progress <= 0 or progress >= 1:
        return None
    elapsed = run_seconds(run, now)
    if elapsed is None or not (progress >= ETA_FROM_PROGRESS or
                               (elapsed >= ETA_FROM_SECONDS and progress >= ETA_MIN_PROGRESS)):
        return None
    return elapsed * (1 - progress) / progress


def bar(fraction: float | None, width: int) -> str:
    """A progress bar `width` cells wide, in eighths of a cell."""
    if fraction is None or width <= 0:
        return " " * max(width, 0)
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, part = divmod(eighths, 8)
    text = "█" * full + (_EIGHTHS[part] if part and full < width else "")
    return text.ljust(width, " " if full < width else "█")[:width]


def progress_cell(run: dict[str, Any], width: int) -> Text:
    """Bar and percent for a run's progress, coloured by state; blank while queued."""
    state = run.get("state")
    progress = 1.0 if state == "succeeded" else run.get("progress")
    if state == "queued" or (progress is None and state != "running"):
        return Text("")
    if progress is None:
        return Text(fit(run.get("progress_text") or "…", width), style="yellow")
    pct = f"{int(progress * 100):3d}%"
    style = {"succeeded": "green", "failed": "red", "cancelled": "dim"}.get(str(state), "yellow")
    return Text(bar(progress, max(1, width - 5)) + " " + pct, style=style)


def state_cell(run: dict[str, Any]) -> Text:
    state = str(run.get("state") or "?")
    label = "stopping" if state == "running" and run.get("cancel_requested") else state
    return Text(visible(label), style=STATE_STYLES.get(state, ""))


# -- runs on a Slurm cluster (`executor: slurm`): the job, its node and why it waits -------------
REQUEUED = "requeued by Slurm"
"""The progress text the daemon gives a run whose job Slurm put back in its queue."""


def on_slurm(run: dict[str, Any]) -> bool:
    """Whether the run's attempt went to a Slurm cluster (Slurm, not tix, chose its GPUs)."""
    return run.get("executor") == "slurm" or bool(run.get("job_id"))


def slurm_wait(run: dict[str, Any]) -> str:
    """Slurm's reason a queued run's job waits (`Resources`, `Priority`...); "" when the run is not
    in Slurm's queue or Slurm has not said yet."""
    return str(run.get("reason") or "") if run.get("state") == "queued" and run.get("job_id") else ""


def slurm_job(run: dict[str, Any]) -> str:
    """`slurm job 12 on node7`: where a cluster run is (no node while it waits), and how Slurm ended
    a failed or cancelled one (`slurm job 12 on node7, ended TIMEOUT (TimeLimit)`); "" for a local run."""
    job, node, state = run.get("job_id"), run.get("node"), run.get("state")
    if not job:
        return ""
    text = f"slurm job {job}" + (f" on {node}" if node and state != "queued" else "")
    ended = run.get("reason") if state in ("failed", "cancelled") else None
    return text + (f", ended {ended}" if ended else "")


def slurm_queue_line(run: dict[str, Any]) -> str:
    """A queued cluster run's story: `requeued by Slurm · waiting in Slurm's queue: Resources`."""
    if run.get("state") != "queued" or not run.get("job_id"):
        return ""
    reason = slurm_wait(run)
    told = f"waiting in Slurm's queue: {reason}" if reason else f"submitted to Slurm as job {run['job_id']}"
    return f"{REQUEUED} · {told}" if run.get("progress_text") == REQUEUED else told


def queue_cell(run: dict[str, Any], width: int) -> str:
    """A queued cluster job in the runs table's progress column (blank for other queued runs), as
    much as fits `width`: `job 42 pending: Resources`, `pending: Resources`, else `(Resources)` as
    squeue's NODELIST(REASON) column shows a waiting job."""
    if run.get("state") != "queued" or not run.get("job_id"):
        return ""
    job, reason = run["job_id"], slurm_wait(run)
    if reason:
        tries, last = (f"job {job} pending: {reason}", f"pending: {reason}"), f"({reason})"
    else:
        last = "requeued" if run.get("progress_text") == REQUEUED else "submitted"
        tries = (f"job {job} {last}",)
    return next((text for text in tries if len(text) <= width), last)


def fit(text: str, width: int) -> str:
    """`text` on one line (its controls, newlines too, made visible) cut to `width` cells with an
    ellipsis (no wrapping in tables)."""
    text = visible(text)
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def gib(n: float | None) -> str:
    return "?" if n is None else f"{n / (1 << 30):.1f}"


def count_label(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def column_decimals(values: list[float]) -> int | None:
    """Decimals that show every value of a column readably (the most any needs, at most 6), so
    the column lines up at the point; None when one needs scientific notation."""
    texts = [readable_number(v) for v in values if math.isfinite(v)]
    if any("e" in t for t in texts):
        return None
    return min(SIGNIFICANT, max((len(t.partition(".")[2]) for t in texts), default=0))


# -- what a finished run found (the dashboard's result column and summary) -----------------------
GROUP_ORDER = ("math", "other", "non")


def short_value(value: float) -> str:
    """3 significant digits: 57.3, 0.412, 1.2e-05 (a column of 8-16 cells)."""
    return f"{value:.3g}" if value == 0 or 1e-3 <= abs(value) < 1e5 else f"{value:.1e}"


def ordered_groups(values: dict[str, Any]) -> list[tuple[str, float]]:
    """(group, value) in the paper's order (math, other, non), then any other group by name."""
    known = [g for g in GROUP_ORDER if g in values] + sorted(g for g in values if g not in GROUP_ORDER)
    return [(g, float(values[g])) for g in known if isinstance(values[g], int | float)]


def eval_accuracies(result: dict[str, Any]) -> dict[str, float]:
    scores = result.get("scores") if isinstance(result.get("scores"), dict) else {}
    return {b: float(s["metrics"]["accuracy"]) for b, s in scores.items()
            if isinstance(s, dict) and isinstance((s.get("metrics") or {}).get("accuracy"), int | float)}


def result_facts(run: dict[str, Any]) -> list[tuple[str, str]]:
    """What a succeeded run found, as (label, value) pairs, most telling first: mean accuracy and
    group means (eval), final loss/reward (train, build), d per group (analyse)."""
    result = run.get("result")
    if run.get("state") != "succeeded" or not isinstance(result, dict):
        return []
    kind = run.get("kind")
    if kind == "eval":
        accs = eval_accuracies(result)
        facts = [("acc", short_value(sum(accs.values()) / len(accs)))] if accs else []
        return facts + [(g, short_value(v)) for g, v in ordered_groups(result.get("groups") or {})]
    if kind == "score":
        metrics = (result.get("summary") or {}).get("metrics") or {}
        return [(k, short_value(float(v))) for k, v in metrics.items() if isinstance(v, int | float)][:3]
    if kind == "analyse":
        d = (result.get("pca_shift") or {}).get("d") or {}
        kl = (result.get("token_shift") or {}).get("kl") or {}
        return [(name, "/".join(short_value(v) for _, v in ordered_groups(values)))
                for name, values in (("d", d), ("KL", kl)) if values]
    final = dict(result.get("final") or {})
    if kind == "build" and isinstance(result.get("final_loss"), int | float):
        final["loss"] = result["final_loss"]
    facts = [(k, short_value(float(final[k]))) for k in ("reward", "loss")
             if isinstance(final.get(k), int | float)]
    return facts + ([("steps", str(result["steps"]))] if result.get("steps") else [])


SHORT_LABELS = {"reward": "rwd"}
"""Labels a narrow result column writes shorter (the figure itself is never cut)."""
CUT = "…"
"""What a cell or line shows in place of figures that do not fit: a number is dropped, never cut."""


def result_forms(run: dict[str, Any]) -> list[str]:
    """The run's most telling figure (`acc 57.3`, `reward 0.292`, `d 0.494/0.204/0.21`), then
    shorter forms of it, each made of whole numbers: `rwd 0.292`, `d .494/.204/.21`, `d 0.494 …`."""
    facts = result_facts(run)
    if not facts:
        return []
    label, value = facts[0]
    forms = [f"{label} {value}"]
    if label in SHORT_LABELS:
        forms.append(f"{SHORT_LABELS[label]} {value}")
    parts = value.split("/")
    if len(parts) > 1:  # a figure per group: without leading zeros, then the first group alone
        forms.append(f"{label} " + "/".join(p[1:] if p.startswith("0.") else p for p in parts))
        forms.append(f"{label} {parts[0]} {CUT}")
    return forms


def result_cell(run: dict[str, Any], width: int | None = None) -> str:
    """The result column at `width` cells: the longest form of the run's figure that fits whole,
    else `…` (the selected run's line below the table has every figure)."""
    forms = result_forms(run)
    if not forms or width is None:
        return forms[0] if forms else ""
    return next((form for form in forms if len(form) <= width), CUT)


def fit_parts(parts: list[Text], width: int, sep: str = " · ", sep_style: str = "") -> Text:
    """As many whole parts as fit `width` cells, joined by `sep`, then `…` when some are left out:
    a line of figures is shortened by figures, never through the middle of one."""
    out = Text()
    for i, part in enumerate(parts):
        gap = sep if out.plain else ""
        rest = i + 1 < len(parts)
        room = width - (len(sep) + len(CUT) if rest else 0)
        if len(out) + len(gap) + len(part) > room:
            out.append(gap + CUT if out.plain else CUT, style="dim")
            return out
        out.append(gap, style=sep_style)
        out.append_text(part)
    return out


def result_parts(run: dict[str, Any]) -> list[str]:
    """Every fact of the result, each whole (`acc 70.8`, `math 62.5`; an analyse run's `d math
    0.494 other 0.204 non 0.21`), for lines that drop what does not fit rather than cut it."""
    result = run.get("result") if run.get("state") == "succeeded" else None
    if run.get("kind") == "analyse" and isinstance(result, dict):
        shifts = [("d", (result.get("pca_shift") or {}).get("d") or {}),
                  ("KL", (result.get("token_shift") or {}).get("kl") or {})]
        return [f"{name} " + " ".join(f"{g} {short_value(v)}" for g, v in ordered_groups(values))
                for name, values in shifts if values]
    return [f"{k} {v}" for k, v in result_facts(run)]


def result_line(run: dict[str, Any]) -> str:
    """Every fact of the result on one line, for the selected run's summary."""
    return " · ".join(result_parts(run))
