"""The device kit's helper: which of its wheels this Python lacks, the stand-in modules, the size.

`make device-kit` downloads into `.device-kit/` the wheels of bench/device-kit.txt (cp312,
manylinux x86_64, `--no-deps`), builds the ones without a wheel and tix's own, then calls `size`.
On the lent machine bench/device_check.sh calls `plan` (the wheels to install: those whose
distribution the image lacks or has older, and tix's) and, after `pip install --no-index --target`,
`stubs` (bench/device_stubs modules for what stays missing). Only the standard library and
`packaging` (which transformers needs, so every image has it) are used: this runs before the kit.

Run: `python bench/device_kit.py plan KIT | stubs TARGET | size KIT [LIMIT_MIB]`.
"""

from __future__ import annotations

import shutil
import sys
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

STUBS = Path(__file__).resolve().parent / "device_stubs"
LIMIT_MIB = 50.0


def installed(name: str) -> Version | None:
    """The version of distribution `name` this Python has, else None."""
    try:
        return Version(metadata.version(name))
    except (metadata.PackageNotFoundError, ValueError):
        return None


def plan(kit: Path) -> list[Path]:
    """The kit's wheels to install: tix always; the others where the image lacks them or has an
    older version (the kit's, first on PYTHONPATH, then wins). A newer one in the image stays."""
    chosen = []
    for wheel in sorted(kit.glob("*.whl")):
        name, version, _build, _tags = parse_wheel_filename(wheel.name)
        have = installed(name)
        if canonicalize_name(name) == "tix" or have is None or have < version:
            chosen.append(wheel)
    return chosen


def stubs(target: Path) -> list[str]:
    """Copy into `target` each stand-in module that is still not importable; the names copied."""
    sys.path.insert(0, str(target))
    copied = []
    for stub in sorted(STUBS.iterdir()):
        name = stub.stem if stub.suffix == ".py" else stub.name
        if stub.name.startswith(("_", ".")) or find_spec(name) is not None:
            continue
        destination = target / stub.name
        if stub.is_dir():
            shutil.copytree(stub, destination, dirs_exist_ok=True)
        else:
            shutil.copy2(stub, destination)
        copied.append(name)
    return copied


def size_mib(kit: Path) -> float:
    return sum(f.stat().st_size for f in kit.glob("*.whl")) / (1 << 20)


def main(argv: list[str]) -> int:
    command, folder = argv[0], Path(argv[1])
    if command == "plan":
        print("\n".join(str(w) for w in plan(folder)))
    elif command == "stubs":
        print(" ".join(stubs(folder)) or "none")
    elif command == "size":
        limit = float(argv[2]) if len(argv) > 2 else LIMIT_MIB
        mib, count = size_mib(folder), len(list(folder.glob("*.whl")))
        print(f"device kit: {count} wheels, {mib:.1f} MiB in {folder} (limit {limit:.0f} MiB)")
        return 0 if mib <= limit else 1
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
