"""A footer that fits: at 80 columns Textual's footer cuts its last keys (`? he▏`, `q q▏`).

`FitFooter` keeps `? help` and `q quit` always, then the screen's own keys in the order the
screen lists them (most important first) while they fit beside the palette key; `?` lists every
binding, shown or not. It recomposes when the terminal is resized."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

#: Actions always shown: how to find the rest, and how to leave.
ESSENTIAL = ("help", "quit")
#: Cells the palette key takes at the right edge (`▏^p palette`).
PALETTE_CELLS = 13


def key_cells(key: FooterKey) -> int:
    """Cells one key takes in a compact footer: ` k desc ` (a space each side, one between)."""
    return len(key.key_display) + len(key.description) + 3


def fitting(keys: list[FooterKey], width: int) -> list[FooterKey]:
    """The keys to show within `width` cells: the essential ones, then the others in order."""
    kept = [k for k in keys if k.action in ESSENTIAL]
    used = sum(key_cells(k) for k in kept)
    for key in keys:
        if key not in kept and used + key_cells(key) <= width:
            kept.append(key)
            used += key_cells(key)
    return [k for k in keys if k in kept]  # the screen's order


class FitFooter(Footer):
    """Footer showing what fits at the current width; see the module docstring."""

    def compose(self) -> ComposeResult:
        widgets: list[Any] = list(super().compose())
        keys = [w for w in widgets if isinstance(w, FooterKey) and not w.has_class("-command-palette")]
        shown = fitting(keys, max(0, (self.app.size.width or 80) - PALETTE_CELLS))
        self.styles.grid_size_columns = len(shown) + (len(widgets) - len(keys))
        yield from (w for w in widgets if not isinstance(w, FooterKey) or w in shown or w not in keys)

    def on_resize(self) -> None:
        self.call_after_refresh(self.recompose)
