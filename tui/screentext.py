"""The text of what an app shows (tests, the bench and README captures read screens with it)."""

from __future__ import annotations

from textual.app import App


def screen_text(app: App[object]) -> str:
    """The current screen as plain text, one line per terminal row, trailing spaces removed."""
    strips = app.screen._compositor.render_strips()
    return "\n".join(strip.text.rstrip() for strip in strips)
