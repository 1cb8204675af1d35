"""The worker's name before the engine/ layout change; the worker is `engine.jobs.worker` now.

Kept because a daemon started by an older tix keeps spawning `python -m engine.worker RUN_DIR`
after an upgrade until it exits: with this alias those runs start on the new code instead of
failing with "No module named engine.worker". Nothing in tix uses this name.
"""

import sys

from engine.jobs.worker import main

if __name__ == "__main__":
    sys.exit(main())
