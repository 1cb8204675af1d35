"""A worker's log with search and wrapping: Textual's Log plus highlighted matches and wrapped lines.

Run detail's Logs tab shows up to 10,000 lines that keep arriving. Textual's Log draws only the
lines on screen, which keeps a long log cheap; this keeps that and adds two things a researcher
reading a traceback or a loss line needs:

- search: every match highlighted, the current one brighter, `n`/`N` to the next/previous (the
  view scrolls to it), and a count (`3/17`). Matching is on the text as shown (control characters
  already made visible by `tui.format.visible`, tabs expanded), as plain text, case-insensitive
  unless the query has a capital letter (vim's and less's smartcase).
- wrapping: long lines fold at the widget's width instead of running off to the right. Rows are
  laid out once per width and content change (a few ms for 10,000 lines), not at every frame.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widgets import Log

if TYPE_CHECKING:
    from typing import Self

MATCH = Style(color="black", bgcolor="yellow")
CURRENT = Style(color="black", bgcolor="dark_orange", bold=True)


def find_matches(lines: list[str], query: str) -> list[tuple[int, int, int]]:
    """(line, start, end) of every match of `query` in `lines`, as plain text; smartcase."""
    if not query:
        return []
    flags = 0 if any(c.isupper() for c in query) else re.IGNORECASE
    pattern = re.compile(re.escape(query), flags)
    return [(y, m.start(), m.end()) for y, line in enumerate(lines) for m in pattern.finditer(line)]


def wrap_spans(line: str, width: int) -> list[tuple[int, int]]:
    """(start, end) character spans of `line` folded at `width` cells (at least one span)."""
    if width < 1 or not line:
        return [(0, len(line))]
    if line.isascii():
        return [(i, min(i + width, len(line))) for i in range(0, len(line), width)]
    spans, start, cells = [], 0, 0
    for i, char in enumerate(line):
        w = cell_len(char)
        if cells + w > width and i > start:
            spans.append((start, i))
            start, cells = i, 0
        cells += w
    spans.append((start, len(line)))
    return spans


class LogView(Log):
    """A Log whose lines can be searched (`search`, `next_match`) and wrapped (`wrap`)."""

    def __init__(self, *, max_lines: int | None = None, auto_scroll: bool = True,
                 id: str | None = None) -> None:
        super().__init__(max_lines=max_lines, auto_scroll=auto_scroll, id=id)
        self.wrap = False
        """Fold long lines at the widget's width (else they run on and the view scrolls sideways)."""
        self.query_text = ""
        self.matches: list[tuple[int, int, int]] = []
        self.current = -1
        """Index into `matches` of the match `n`/`N` last moved to (-1: none yet)."""
        self._by_line: dict[int, list[tuple[int, int, int]]] = {}
        self._rows: list[tuple[int, int, int]] | None = None
        self._first_rows: list[int] = []
        self._rows_width = 0

    # -- content ---------------------------------------------------------------------------------
    def shown_lines(self) -> list[str]:
        """The lines as drawn (control codes replaced, tabs expanded): what search and wrap see."""
        return [self._process_line(line) for line in self._lines[:self.line_count]]

    def write(self, data: str, scroll_end: bool | None = None) -> Self:
        follow = self.auto_scroll if scroll_end is None else scroll_end
        super().write(data, scroll_end=follow and not self.wrap)
        self._content_changed(follow)
        return self

    def write_lines(self, lines: object, scroll_end: bool | None = None) -> Self:
        follow = self.auto_scroll if scroll_end is None else scroll_end
        super().write_lines(lines, scroll_end=follow and not self.wrap)  # type: ignore[arg-type]
        self._content_changed(follow)
        return self

    def clear(self) -> Self:
        super().clear()
        self._content_changed(False)
        return self

    def _update_maximum_width(self, updates: int, size: int) -> None:
        super()._update_maximum_width(updates, size)
        if self.wrap:
            self._size_rows()

    def _content_changed(self, follow: bool) -> None:
        self._rows = None
        if self.query_text:
            self._rematch(keep=True)
        if self.wrap:
            self._size_rows()
            if follow:
                self.scroll_end(animate=False, immediate=True, x_axis=False)
        self._render_line_cache.clear()
        self.refresh()

    # -- search ----------------------------------------------------------------------------------
    def search(self, query: str) -> int:
        """Highlight every match of `query` (empty: none) and move to the first one at or below the
        top of the view; returns how many there are."""
        self.query_text = query
        self._rematch(keep=False)
        if self.matches:
            top = self._top_line()
            self.current = next((i for i, m in enumerate(self.matches) if m[0] >= top), 0)
            self._show_current()
        self._render_line_cache.clear()
        self.refresh()
        return len(self.matches)

    def next_match(self, step: int = 1) -> bool:
        """Move to the next (`step` 1) or previous (-1) match, wrapping around; False when none."""
        if not self.matches:
            return False
        self.current = (self.current + step) % len(self.matches)
        self._show_current()
        self._render_line_cache.clear()
        self.refresh()
        return True

    def count_text(self) -> str:
        """`3/17`, `0/17` before moving to one, `no match`; empty without a search."""
        if not self.query_text:
            return ""
        if not self.matches:
            return "no match"
        return f"{self.current + 1}/{len(self.matches)}"

    def _rematch(self, keep: bool) -> None:
        old = self.matches[self.current] if keep and 0 <= self.current < len(self.matches) else None
        self.matches = find_matches(self.shown_lines(), self.query_text)
        self._by_line = {}
        for i, (y, start, end) in enumerate(self.matches):
            self._by_line.setdefault(y, []).append((i, start, end))
        fallback = 0 if keep and self.matches else -1
        self.current = self.matches.index(old) if old in self.matches else fallback

    def _show_current(self) -> None:
        y, start, end = self.matches[self.current]
        line = self._process_line(self._lines[y])
        if self.wrap:
            region = Region(0, self._row_of(y, start), 1, 1)
        else:
            region = Region(cell_len(line[:start]), y, max(1, cell_len(line[start:end])), 1)
        self.scroll_to_region(region, animate=False, center=True, immediate=True)

    # -- wrapping --------------------------------------------------------------------------------
    def set_wrap(self, wrap: bool) -> None:
        """Wrap or unwrap, keeping the top line of the view where it is (or the end, following)."""
        top, at_end = self._top_line(), self.is_vertical_scroll_end
        self.wrap = wrap
        self._rows = None
        if wrap:
            self._size_rows()
            self.scroll_to(0, self._row_of(top, 0), animate=False, immediate=True)
        else:
            self.virtual_size = Size(self._width, self.line_count)
            self.scroll_to(0, top, animate=False, immediate=True)
        if at_end and self.auto_scroll:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self._render_line_cache.clear()
        self.refresh()

    def on_resize(self) -> None:
        if self.wrap:
            self._rows = None
            self._size_rows()
            self.refresh()

    def _width_now(self) -> int:
        return max(1, self.scrollable_content_region.width or self.size.width)

    def _wrap_rows(self) -> list[tuple[int, int, int]]:
        width = self._width_now()
        if self._rows is None or width != self._rows_width:
            rows: list[tuple[int, int, int]] = []
            firsts: list[int] = []
            for y, line in enumerate(self.shown_lines()):
                firsts.append(len(rows))
                rows += [(y, start, end) for start, end in wrap_spans(line, width)]
            self._rows, self._first_rows, self._rows_width = rows, firsts, width
        return self._rows

    def _size_rows(self) -> None:
        self.virtual_size = Size(self._width_now(), len(self._wrap_rows()))

    def _row_of(self, line: int, start: int) -> int:
        """The wrapped row that shows character `start` of `line`."""
        rows = self._wrap_rows()
        if line >= len(self._first_rows):
            return max(0, len(rows) - 1)
        row = self._first_rows[line]
        while row + 1 < len(rows) and rows[row + 1][0] == line and rows[row + 1][1] <= start:
            row += 1
        return row

    def _top_line(self) -> int:
        y = self.scroll_offset.y
        if not self.wrap:
            return y
        rows = self._wrap_rows()
        return rows[min(y, len(rows) - 1)][0] if rows else 0

    # -- drawing ---------------------------------------------------------------------------------
    def _line_text(self, y: int, rich_style: Style) -> Text:
        text = Text(self._process_line(self._lines[y]), no_wrap=True)
        text.stylize(rich_style)
        for i, start, end in self._by_line.get(y, ()):
            text.stylize(CURRENT if i == self.current else MATCH, start, end)
        return text

    def _render_line_strip(self, y: int, rich_style: Style) -> Strip:
        if y not in self._by_line:
            return super()._render_line_strip(y, rich_style)
        text = self._line_text(y, rich_style)
        return Strip(text.render(self.app.console), text.cell_len)

    def render_line(self, y: int) -> Strip:
        if not self.wrap:
            return super().render_line(y)
        rows = self._wrap_rows()
        row = self.scroll_offset.y + y
        width = self.size.width
        if row >= len(rows):
            return Strip.blank(width, self.rich_style)
        line, start, end = rows[row]
        text = self._line_text(line, self.rich_style)[start:end]
        strip = Strip(text.render(self.app.console), text.cell_len)
        return strip.crop_extend(0, width, self.rich_style)

