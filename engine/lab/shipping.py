"""Where the shipped tiny lab base lives in the package, and the check that it is intact.

Read by the build job (engine/jobs/build.py) before it trains anything; written by
`python -m engine.lab.ship` (engine/lab/ship.py), which says what is shipped and why.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

SHIPPED = Path(__file__).resolve().parent / "shipped"
MANIFEST = "shipped.json"


def shipped_folder(name: str) -> Path | None:
    """The shipped build named `name` (tiny-lab-<hash>), if there is one with its manifest."""
    folder = SHIPPED / name
    return folder if (folder / MANIFEST).is_file() else None


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify(folder: Path) -> int:
    """Every file listed in the manifest is there with its recorded sha256: a damaged copy fails
    the build run with this message rather than loading a broken model. Returns how many files
    were checked (the run says so)."""
    files = json.loads((folder / MANIFEST).read_text())["files"]
    for name, digest in files.items():
        if not (folder / name).is_file() or sha256(folder / name) != digest:
            raise ValueError(f"shipped model {folder.name}: {name} is missing or changed (reinstall tix, "
                             "or set `rebuild: true` under base: to train it here)")
    return len(files)
