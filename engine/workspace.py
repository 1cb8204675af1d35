"""The workspace folder (TIX_HOME) and the paths inside it.

Every process (client, daemon, worker) agrees on these paths, so they live in one place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def default_home() -> Path:
    """`TIX_HOME` when set, else `~/.tix`."""
    return Path(os.environ.get("TIX_HOME") or Path.home() / ".tix").expanduser()


@dataclass(frozen=True)
class Workspace:
    """Paths of one tix workspace; `ensure()` creates it with owner-only permissions."""

    home: Path

    @classmethod
    def resolve(cls, home: str | os.PathLike[str] | None = None) -> Workspace:
        return cls(Path(home).expanduser().resolve() if home else default_home().resolve())

    @property
    def db(self) -> Path:
        return self.home / "tix.duckdb"

    @property
    def socket(self) -> Path:
        return self.home / "tix.sock"

    @property
    def lock(self) -> Path:
        return self.home / "daemon.lock"

    @property
    def log(self) -> Path:
        return self.home / "daemon.log"

    @property
    def runs(self) -> Path:
        return self.home / "runs"

    @property
    def models(self) -> Path:
        return self.home / "models"

    @property
    def cache(self) -> Path:
        return self.home / "cache"

    @property
    def config(self) -> Path:
        return self.home / "config.yaml"

    def run_dir(self, run_id: str) -> Path:
        return self.runs / run_id

    def ensure(self) -> Workspace:
        """Create the folders; the home is 0700 because the socket accepts any local user's bytes."""
        self.home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o700)
        for sub in (self.runs, self.models, self.cache):
            sub.mkdir(exist_ok=True)
        return self
