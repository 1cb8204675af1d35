"""The top of every screen: the screen tabs with their keys, and the daemon banner.

The tabs show which number key opens which screen (the footer keeps the current screen's own
keys, which would not fit at 80 columns together with six screen keys). The banner appears
when the daemon goes away ("daemon not reachable; reconnecting...") and hides again when the
app has reconnected; the app tells every Chrome through `ConnectionChanged`.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from tui.format import visible
from tui.messages import ConnectionChanged

#: (mode, key, title) of every screen, in tab order; help is `?` on every screen.
SCREENS: tuple[tuple[str, str, str], ...] = (
    ("runs", "1", "Runs"), ("experiments", "2", "Experiments"), ("ti", "3", "TI"), ("shift", "4", "Shift"),
    ("sql", "5", "SQL"), ("gpus", "6", "Resources"),
)
#: Shorter titles, and no ` tix ` brand, where the tab line does not fit (at 60 columns the sixth
#: tab read `6 …`).
SHORT_TITLES = {"experiments": "Exps", "gpus": "Res"}
BANNER_TEXT = "daemon not reachable; reconnecting..."
STOPPED_TEXT = "daemon stopped - press r to start it"


class Chrome(Vertical):
    """Tabs (one line) and, while the daemon is away, a banner line under them."""

    DEFAULT_CSS = """
    Chrome { dock: top; height: auto; width: 100%; }
    Chrome > #chrome-tabs { height: 1; background: $panel; text-wrap: nowrap; text-overflow: ellipsis; }
    Chrome > #chrome-banner { height: 1; background: $error; color: $text; text-style: bold; display: none; }
    Chrome.-offline > #chrome-banner { display: block; }
    """
    online: ClassVar[bool] = True

    def compose(self) -> ComposeResult:
        yield Static(id="chrome-tabs")
        yield Static(BANNER_TEXT, id="chrome-banner")

    def on_mount(self) -> None:
        listen = getattr(self.app, "listen", None)
        if listen is not None:
            listen(self)
        self.app.mode_change_signal.subscribe(self, lambda _mode: self.draw())
        self.set_offline(not getattr(self.app, "online", True), getattr(self.app, "offline_reason", ""),
                         bool(getattr(self.app, "stopped_reason", "")))
        self.draw()

    def on_connection_changed(self, message: ConnectionChanged) -> None:
        self.set_offline(not message.online, message.reason, message.stopped)

    def set_offline(self, offline: bool, reason: str = "", stopped: bool = False) -> None:
        self.set_class(offline, "-offline")
        banner = (STOPPED_TEXT if stopped else BANNER_TEXT) + (f" ({reason})" if reason else "")
        self.query_one("#chrome-banner", Static).update(Text(" " + visible(banner), overflow="ellipsis",
                                                             no_wrap=True))

    def draw(self) -> None:
        self.query_one("#chrome-tabs", Static).update(tabs_text(self.app.current_mode, self.size.width))

    def on_resize(self) -> None:
        self.draw()


def tabs_text(current: str, width: int = 0) -> Text:
    """` tix  1 Runs  2 Experiments ...  ? help` with the current screen highlighted; narrower
    than that line (`width`), short titles without the brand, so every screen's key and name show."""
    text = tab_line(current, {}, " tix ")
    return tab_line(current, SHORT_TITLES, "") if width and text.cell_len > width else text


def tab_line(current: str, short: dict[str, str], brand: str) -> Text:
    text = Text(brand, style="bold")
    for mode, key, title in SCREENS:
        text.append(" ")
        style = "reverse bold" if mode == current else ""
        text.append(f" {key} ", style=f"bold {style}".strip())
        text.append(f"{short.get(mode, title)} ", style=style)
    text.append("  ? ", style="bold")
    text.append("help")
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text
