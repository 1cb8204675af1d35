"""The daemon's name before the engine/ layout change; the daemon is `engine.daemon.server` now.

Kept because a client of an older tix still running after an upgrade (an open TUI) starts the
daemon as `python -m engine.server`. Nothing in tix uses this name.
"""

import sys

from engine.daemon.server import main

if __name__ == "__main__":
    sys.exit(main())
