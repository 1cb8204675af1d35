"""tix TUI (Textual): bare `tix` in a terminal opens it (tui.app). It reaches the daemon only
through tui.source (never DuckDB, never an ML library; tests/tui/test_connection.py checks)."""
