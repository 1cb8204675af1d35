"""The tix TUI: one Textual app a researcher keeps open all day over SSH (`tix` in a terminal).

The app holds the one connection to the daemon (tui.source) and never opens the database or
imports an ML library. It loads every run once (`status`), then lives on what the daemon pushes:
run rows go into `app.runs` and, in batches, to the screens that listen; `run_events` notices go
to the run detail that follows that run. When the daemon goes away every screen shows a banner
("daemon not reachable; reconnecting...") while the app retries about once a second, starting
the daemon again as the CLI would; once back it reloads everything and the banner goes.

Once the first screen is drawn the app freezes what it has allocated so far (`gc.freeze()`: the
modules, widgets and runs it keeps for the whole session) so that Python's full garbage
collections, which otherwise walk a few hundred thousand such objects, stop costing frames of
a quarter of a second (bench/tui.py).

Screens are modes, switched with number keys (1 Runs, 2 Experiments, 3 TI, 4 Shift, 5 SQL,
6 Resources), `?` for help and ctrl+p for the command palette. Experiments, TI, Shift and SQL are
imported lazily by name, and a placeholder says why when one cannot be loaded.

Run: `tix` (bare, in a terminal) or `python -m tui.app [--home DIR]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import subprocess
import time
import weakref
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar

from rich.text import Text
from textual.app import App
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.markup import escape
from textual.message import Message
from textual.message_pump import MessagePump
from textual.screen import ModalScreen, Screen
from textual.widgets import Input, TextArea

from engine.client.connection import DaemonUnavailable
from engine.workspace import Workspace
from tui.format import visible
from tui.messages import ConnectionChanged, RunEventsPushed, RunsLoaded, RunsPushed
from tui.notify import Notifier, ended
from tui.source import Source, SourceError
from tui.widgets.chrome import SCREENS, Chrome
from tui.widgets.literal import LiteralNotify

#: Screens written in their own modules, imported when first opened: mode -> (module, class).
LAZY_SCREENS = {
    "experiments": ("tui.screens.experiments", "ExperimentsScreen"),
    "ti": ("tui.screens.analytics", "TIScreen"),
    "shift": ("tui.screens.analytics", "ShiftScreen"),
    "sql": ("tui.screens.sql", "SQLScreen"),
    "runs": ("tui.screens.runs", "RunsScreen"),
    "gpus": ("tui.screens.gpus", "GpusScreen"),
}
CONNECT_ERRORS = (SourceError, OSError, DaemonUnavailable, subprocess.SubprocessError, TimeoutError)
TITLES = {mode: title for mode, _key, title in SCREENS}


class TixCommands(Provider):
    """The command palette: every screen, help, and the actions of the screen it was opened on."""

    def commands(self) -> list[tuple[str, Callable[[], Any], str]]:
        app = self.app
        assert isinstance(app, TixApp)
        found: list[tuple[str, Callable[[], Any], str]] = [
            (f"Go to {title}", partial(app.action_switch, mode), f"key {key}")
            for mode, key, title in SCREENS]
        found.append(("Help: every key binding", app.action_help, "key ?"))
        found.append(("Run-end alert: off, bell, OSC 9, both", app.action_cycle_alert, "key ctrl+g"))
        found += screen_commands(self.screen)
        found += other_screen_commands(app, self.screen)
        for r in app.recent_runs(200):
            what = f"{r['id']} ({r.get('experiment') or '-'}/{r.get('name') or '-'}, {r.get('state')})"
            found.append((f"Open run {visible(what)}", partial(app.open_run, r["id"]), "run detail"))
        return found

    async def discover(self) -> Hits:
        for name, callback, help_text in self.commands()[:60]:
            yield DiscoveryHit(Text(name), callback, help=help_text)  # Text: run names are literal

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, callback, help_text in self.commands():
            score = matcher.match(name)
            if score > 0:  # highlight() reads its text as markup: escaped, a run name stays literal
                yield Hit(score, matcher.highlight(escape(name)), callback, help=help_text)


def shown_bindings(screen: type[Screen[Any]] | Screen[Any]) -> list[Binding]:
    """The bindings a screen shows in its footer: the ones worth a palette command."""
    return [b for b in getattr(screen, "BINDINGS", []) if isinstance(b, Binding) and b.description and b.show]


def screen_commands(screen: Screen[Any]) -> list[tuple[str, Callable[[], Any], str]]:
    """The shown bindings of `screen` as palette commands ("Runs: sort", ...)."""
    title = type(screen).__name__.removesuffix("Screen")
    return [(f"{title}: {b.description}", partial(screen.run_action, b.action), f"key {b.key}")
            for b in shown_bindings(screen)]


def other_screen_commands(app: TixApp, current: Screen[Any]) -> list[tuple[str, Callable[[], Any], str]]:
    """The shown bindings of every other screen: picking one switches there, then runs it."""
    out = []
    for mode, key, title in SCREENS:
        module, name = LAZY_SCREENS[mode]
        try:
            cls = getattr(importlib.import_module(module), name)
        except Exception:  # noqa: BLE001 - a broken screen shows its reason when opened
            continue
        if not isinstance(current, cls):
            out += [(f"{title}: {b.description}", partial(app.switch_and_run, mode, b.action),
                     f"key {key}, then {b.key}") for b in shown_bindings(cls)]
    return out


class TixApp(LiteralNotify):
    """Screens as modes over one daemon connection; see the module docstring."""

    TITLE = "tix"
    ENABLE_COMMAND_PALETTE = True
    COMMANDS = App.COMMANDS | {TixCommands}
    BINDINGS: ClassVar[list[Binding]] = [
        *(Binding(key, f"switch('{mode}')", title, show=False, priority=True)
          for mode, key, title in SCREENS),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit", "quit"),
        Binding("r", "start_daemon", "start a stopped daemon", show=False, priority=True),
        Binding("ctrl+g", "cycle_alert", "run-end alert: off, bell, OSC 9, both", show=False),
        Binding("D", "dag", "the experiment's DAG (runs and experiments lists)", show=False),
    ]

    def __init__(self, ws: Workspace, *, source: Source | None = None, autostart: bool = True,
                 clock: Callable[[], float] = time.time, retry_seconds: float = 1.0) -> None:
        super().__init__()
        self.ws = ws
        self.source = source or Source(ws, autostart=autostart)
        self.clock = clock
        self.retry_seconds = retry_seconds
        self.runs: dict[str, dict[str, Any]] = {}
        """Every run by id, as the daemon last described it (status, then pushes)."""
        self.online = True
        """False while the daemon is not reachable (the banner shows)."""
        self.offline_reason = ""
        self.stopped_reason = ""
        """Why the daemon stopped on purpose (`tix daemon stop`, SIGTERM); empty after a crash."""
        self._start_requested = asyncio.Event()
        self.connected_once = asyncio.Event()
        self.pushes_applied = 0
        """Push batches applied so far (tests and the bench wait on it)."""
        self._listeners: weakref.WeakSet[MessagePump] = weakref.WeakSet()
        self._buffers: weakref.WeakSet[Any] = weakref.WeakSet()
        """Screens with editor buffers (the experiments editor), asked before quitting."""
        self._followed: dict[str, int] = {}
        self._follow_lock = asyncio.Lock()
        self.notifier = Notifier(ws.home, self.notify, self.write_terminal, clock)
        """Toasts (and the chosen bell / OSC 9) for runs that end while the app is open (tui.notify)."""
        for mode in LAZY_SCREENS:
            self.add_mode(mode, partial(self.make_screen, mode))

    # -- screens ---------------------------------------------------------------------------------
    def make_screen(self, mode: str) -> Screen[Any]:
        """The screen of `mode`, imported now; a placeholder saying why when it cannot be."""
        from tui.screens.placeholder import PlaceholderScreen

        module, name = LAZY_SCREENS[mode]
        try:
            cls = getattr(importlib.import_module(module), name)
            return cls(self.source)
        except Exception as exc:  # noqa: BLE001 - one broken screen must not take the app down
            why = f"{type(exc).__name__}: {exc}"
            return PlaceholderScreen(TITLES.get(mode, mode), f"{module}.{name}", why)

    def on_mount(self) -> None:
        self.screen_change_signal.subscribe(self, self._dress)
        self.switch_mode("runs")
        self.run_worker(self.keep_connected(), name="daemon connection", exit_on_error=False)

    def _dress(self, screen: Screen[Any], tries: int = 20) -> None:
        """Give a full screen written elsewhere the tabs and banner, if it has none of its own."""
        if isinstance(screen, ModalScreen):
            return
        if not screen.is_mounted:  # the signal can come before the screen's first compose
            if tries:
                self.set_timer(0.05, partial(self._dress, screen, tries - 1))
            return
        if not screen.query(Chrome):
            screen.mount(Chrome(), before=0 if screen.children else None)

    def action_switch(self, mode: str) -> None:
        if mode != self.current_mode:
            self.switch_mode(mode)

    def switch_and_run(self, mode: str, action: str) -> None:
        """A palette command of another screen: go there, then run its action once it is shown."""
        self.action_switch(mode)
        self.call_after_refresh(lambda: self.screen.run_action(action))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Number keys switch screens everywhere except while typing in a text field; `r` starts
        the daemon only while it is stopped on purpose (otherwise it is the screen's own `r`)."""
        if action == "start_daemon":
            return bool(self.stopped_reason) and not isinstance(self.focused, (Input, TextArea))
        return not (action in ("switch", "dag") and isinstance(self.focused, (Input, TextArea)))

    def action_start_daemon(self) -> None:
        self._start_requested.set()

    def action_cycle_alert(self) -> None:
        self.notify(self.notifier.cycle())

    def write_terminal(self, text: str) -> None:
        """Raw text to the terminal (a bell, an OSC 9 built by tui.notify); nothing when headless."""
        if not self.is_headless and self._driver is not None:
            self._driver.write(text)

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.BINDINGS))

    def action_dag(self) -> None:
        """D: the DAG of the experiment of what the screen has selected (tui/screens/dag.py): the
        experiments list's highlighted experiment, the runs list's highlighted run's."""
        from tui.screens.dag import DagScreen, experiment_of

        experiment = experiment_of(self.screen)
        if experiment is None:
            self.notify("D shows an experiment's DAG: select an experiment or a run of one first",
                        severity="warning")
            return
        self.push_screen(DagScreen(self.source, experiment))

    def open_run(self, run_id: str) -> None:
        from tui.screens.run_detail import RunDetailScreen

        self.action_switch("runs")
        self.push_screen(RunDetailScreen(self.source, run_id))

    def recent_runs(self, n: int) -> list[dict[str, Any]]:
        return sorted(self.runs.values(), key=lambda r: r.get("created_at") or "", reverse=True)[:n]

    # -- listeners -------------------------------------------------------------------------------
    def listen(self, node: MessagePump) -> None:
        """`node` gets RunsLoaded, RunsPushed, RunEventsPushed and ConnectionChanged from now on."""
        self._listeners.add(node)

    def tell(self, make: Callable[[], Message]) -> None:
        for node in list(self._listeners):
            if node.is_running:
                node.post_message(make())

    # -- following a run (run_events pushes) -----------------------------------------------------
    def follow_run(self, run_id: str) -> None:
        self._followed[run_id] = self._followed.get(run_id, 0) + 1
        self.run_worker(self.send_follows(), group="follow", exit_on_error=False)

    def unfollow_run(self, run_id: str) -> None:
        if self._followed.get(run_id, 0) <= 1:
            self._followed.pop(run_id, None)
        else:
            self._followed[run_id] -= 1
        self.run_worker(self.send_follows(), group="follow", exit_on_error=False)

    async def send_follows(self) -> None:
        """Tell the daemon the whole set of followed runs (serialised, so the last word wins)."""
        async with self._follow_lock:
            if self.source.connected:
                try:
                    await self.source.request("subscribe", runs=sorted(self._followed))
                except SourceError as exc:
                    self.log.warning(f"subscribe runs failed: {exc}")

    # -- the connection --------------------------------------------------------------------------
    async def keep_connected(self) -> None:
        """Connect, load, apply pushes until the daemon goes; then retry about once a second."""
        while True:
            try:
                await self.source.connect()
                runs = await self.source.request("status")
            except CONNECT_ERRORS as exc:
                await self.source.close()
                self.set_online(False, one_line(exc))
                await asyncio.sleep(self.retry_seconds)
                continue
            self.runs = {r["id"]: r for r in runs}
            await self.send_follows()
            if not self.connected_once.is_set():
                self.call_after_refresh(gc.freeze)
            self.connected_once.set()  # before RunsLoaded: screens stop saying "connecting…"
            self.tell(RunsLoaded)
            self.set_online(True, announce=True)  # screens that asked while offline ask again
            await self.apply_pushes()
            if self.stopped_reason:
                await self.wait_for_start()
                continue
            self.set_online(False, "connection lost")
            await asyncio.sleep(min(self.retry_seconds, 0.2))

    async def wait_for_start(self) -> None:
        """After a deliberate stop: no daemon is started behind the user's back. `r` starts one;
        a daemon started elsewhere (its socket appears) is joined."""
        self._start_requested.clear()
        self.set_online(False, self.stopped_reason, stopped=True)
        self.refresh_bindings()
        while not self._start_requested.is_set() and not self.ws.socket.exists():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._start_requested.wait(), timeout=self.retry_seconds)
        self.stopped_reason = ""
        self.refresh_bindings()

    async def apply_pushes(self) -> None:
        """Apply pushes in batches (everything queued now is one batch); return when disconnected."""
        queue = self.source.pushes
        while True:
            batch = [await queue.get()]
            while not queue.empty():
                batch.append(queue.get_nowait())
            runs: dict[str, dict[str, Any]] = {}
            notices, gone = [], False
            for message in batch:
                kind = message.get("push")
                if kind == "run" and isinstance(message.get("run"), dict):
                    runs[message["run"]["id"]] = message["run"]
                elif kind == "run_events":
                    notices.append(message)
                elif kind == "stopping":
                    self.stopped_reason = str(message.get("reason") or "stopped")
                elif kind == "disconnected" and not self.source.connected:
                    gone = True
            if runs:
                self.notifier.announce(ended(self.runs, runs.values()))
            self.runs.update(runs)
            if runs:
                self.tell(partial(RunsPushed, list(runs.values())))
            if notices:
                self.tell(partial(RunEventsPushed, notices))
            self.pushes_applied += 1
            if gone:
                return

    def set_online(self, online: bool, reason: str = "", announce: bool = False,
                   stopped: bool = False) -> None:
        if online == self.online and reason == self.offline_reason and not (announce or stopped):
            return
        self.online, self.offline_reason = online, "" if online else reason
        self.tell(lambda: ConnectionChanged(online, self.offline_reason, stopped))

    # -- quitting ----------------------------------------------------------------------------------
    def keep_buffers(self, screen: Any) -> None:
        """`screen` holds editor buffers: quitting asks first while `screen.unsaved()` lists any."""
        self._buffers.add(screen)

    def unsaved(self) -> list[tuple[Any, str]]:
        return [(screen, name) for screen in list(self._buffers) for name in screen.unsaved()]

    async def action_quit(self) -> None:
        """Every quit (q, ctrl+q, the palette) comes here: with unsaved buffers, ask first."""
        unsaved = self.unsaved()
        if not unsaved:
            await self.shut_down()
            return
        from tui.widgets.quit_guard import QuitGuard

        if not isinstance(self.screen, QuitGuard):
            self.push_screen(QuitGuard([name for _, name in unsaved]), self.answered_quit)

    async def answered_quit(self, choice: str | None) -> None:
        from tui.widgets.quit_guard import DISCARD, SAVE

        if choice == SAVE:
            for screen in {screen for screen, _ in self.unsaved()}:
                if not await screen.save_all():
                    return  # the screen said why (a toast); nothing is lost, the app stays
        if choice in (SAVE, DISCARD):
            await self.shut_down()

    async def shut_down(self) -> None:
        await self.source.close()
        self.exit()


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:120] if text else type(exc).__name__


def main(home: str | None = None) -> None:
    """Open the TUI on the workspace `home` (else TIX_HOME, else ~/.tix)."""
    TixApp(Workspace.resolve(home)).run()


def _cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m tui.app", description="the tix TUI")
    parser.add_argument("--home", help="workspace folder (default TIX_HOME or ~/.tix)")
    main(parser.parse_args().home)


if __name__ == "__main__":
    _cli()
