"""Daemon settings that are not the Slurm executor's: the CPU slots a box runs at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.daemon import settings as settings_module
from engine.daemon.settings import DaemonSettings


@pytest.mark.parametrize(("cores", "env", "expected"), [
    (2, {}, 2), (16, {}, 2), (1, {}, 1), (None, {}, 1),
    (2, {"TIX_CPU_SLOTS": "1"}, 1), (2, {"TIX_CPU_SLOTS": "3"}, 3), (2, {"TIX_CPU_SLOTS": "0"}, 1),
    (2, {"TIX_CPU_SLOTS": ""}, 2),
])
def test_cpu_slots_default_to_two_where_two_cores_share_them(monkeypatch, tmp_path: Path, cores: int | None,
                                                            env: dict[str, str], expected: int) -> None:
    monkeypatch.setattr(settings_module.os, "cpu_count", lambda: cores)
    assert DaemonSettings.load(tmp_path / "config.yaml", env).cpu_slot_count == expected


def test_cpu_slots_from_config_file_and_a_bad_value_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("cpu_slots: 4\n")
    assert DaemonSettings.load(config, {}).cpu_slot_count == 4
    config.write_text("cpu_slots: many\n")
    with pytest.raises(ValueError, match=r"config.yaml: setting cpu_slots expects a number, got 'many'"):
        DaemonSettings.load(config, {})


def test_database_memory_limit_and_threads_reach_duckdb(tmp_path: Path) -> None:
    """The daemon runs these SET statements on its connection (DaemonSettings.database_settings)."""
    import duckdb

    def applied(settings: DaemonSettings) -> tuple[str, int]:
        con = duckdb.connect(str(tmp_path / f"{len(list(tmp_path.iterdir()))}.duckdb"))
        for statement in settings.database_settings():
            con.execute(statement)
        limit, threads = con.execute("SELECT current_setting('memory_limit'), current_setting('threads')").fetchone()
        con.close()
        return limit, threads

    default = DaemonSettings.load(None, {})
    assert default.db_memory == "640MB" and default.db_threads is None
    assert applied(default)[0] == "610.3 MiB"  # 640 MB in DuckDB's binary units
    assert applied(DaemonSettings.load(None, {"TIX_DB_MEMORY": "1GiB", "TIX_DB_THREADS": "1"})) == ("1.0 GiB", 1)
    assert DaemonSettings.load(None, {"TIX_DB_MEMORY": ""}).db_memory == "640MB"


@pytest.mark.parametrize("bad", ["lots", "768", "-1GB", "1 PB"])
def test_a_bad_database_memory_limit_names_the_setting(tmp_path: Path, bad: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"db_memory: '{bad}'\n")
    with pytest.raises(ValueError, match=r"config.yaml: setting db_memory expects a size such as 640MB"):
        DaemonSettings.load(config, {})
