"""The daemon's Arrow stream producer (engine/daemon/arrow_stream.py) on its own, in fresh processes:
the malloc tuning that lets each batch reuse the memory of the ones before it."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

STREAM_TWICE = """
import resource, sys
import duckdb
from engine.daemon import arrow_stream

if sys.argv[1] == "tuned":
    arrow_stream.keep_freed_memory()
con = duckdb.connect()
query = "SELECT i AS step, 'loss' || (i % 4) AS name, i * 0.5 AS value FROM range(2000000) t(i)"

def stream():
    s = arrow_stream.ArrowStream(con.cursor(), query)
    s.open()
    while s.next_parts() is not None:
        pass
    s.close()
    assert s.rows == 2_000_000, s.rows

stream()
faults = []
for _ in range(2):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    stream()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(min(faults))
"""


def faults_per_result(mode: str) -> int:
    """Page faults of streaming 2M rows (53 MB as Arrow) once more, in a fresh Python process."""
    out = subprocess.run([sys.executable, "-c", STREAM_TWICE, mode], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_batches_reuse_freed_memory_instead_of_faulting_fresh_pages() -> None:
    plain, tuned = faults_per_result("plain"), faults_per_result("tuned")
    assert plain > 4000, plain  # glibc's default: each batch's buffers mapped afresh (about 9,000-11,000)
    assert tuned < plain / 4, (plain, tuned)  # tuned: the heap keeps them for the next batch (100-700)
