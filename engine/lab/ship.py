"""The shipped tiny lab base: the default build's weights, in the package, so a fresh `tix demo`
skips the pre-training (1,000 steps: 137 s on a CPU with native bf16, 566 s on an AVX2-only one).

`engine/lab/shipped/tiny-lab-<hash>/` holds what a build writes (config, safetensors, tokenizer,
`tix_build.json`) plus `shipped.json`: the command that made it, the machine (torch CPU
capability, precision) and the sha256 of every file. The build job copies it into the workspace
when its resolved parameters hash to that folder's name (the defaults, seed 0) and `rebuild` is
not set; any other parameters, or `rebuild: true` in the experiment's `base:`, build here.

Reproduce or refresh it with `python -m engine.lab.ship` (builds the default base in a temporary
folder and replaces the shipped one), or `--from WORKSPACE/models/tiny-lab-<hash>` to ship a build a
run already made; `--check` rebuilds and compares the weights' sha256 with the shipped file
instead (equal on the machine kind that made them; bf16 and fp32 builds differ).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from engine.lab.shipping import MANIFEST, SHIPPED, sha256, shipped_folder

COMMAND = "python -m engine.lab.ship"


class PrintEvents:
    """The events a build writes, printed: the ship command runs a build outside any worker."""

    def log(self, message: str) -> None:
        print(message, flush=True)

    def progress(self, step: int, total: int | None, desc: str = "") -> None:
        if total and (step == total or step % 100 == 0):
            print(f"{desc} {step}/{total}", flush=True)

    def metric(self, step: int, **values: float) -> None:
        return None


def build_default(out: Path) -> dict[str, Any]:
    """Build the default tiny lab base into `out` (a new folder) and return its tix_build.json."""
    from types import SimpleNamespace

    from engine.jobs import build

    params = build.resolve({})
    build._set_threads()
    build._build(SimpleNamespace(events=PrintEvents()), params, out)
    return json.loads((out / build.INFO_FILE).read_text())


def copy_build(source: Path, out: Path, name: str) -> dict[str, Any]:
    """A finished build of the default parameters, copied to `out`; anything else is refused."""
    from engine.jobs import build

    info_file = source / build.INFO_FILE
    if source.name != name or not (source / build.COMPLETE).is_file() or not info_file.is_file():
        raise SystemExit(f"{source} is not a complete build of the default tiny lab ({name})")
    info = json.loads(info_file.read_text())
    if build.content_hash(info["params"]) != name.removeprefix("tiny-lab-"):
        raise SystemExit(f"{source}: its tix_build.json does not hold the default parameters")
    shutil.copytree(source, out)
    return info


def manifest(folder: Path, info: dict[str, Any], made_by: str) -> dict[str, Any]:
    import torch

    return {"command": COMMAND, "made_by": made_by, "params": info["params"], "precision": info["precision"],
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
            "files": {p.name: sha256(p) for p in sorted(folder.iterdir())
                      if p.is_file() and p.name != MANIFEST}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="rebuild and compare with the shipped weights")
    parser.add_argument("--from", dest="source", type=Path,
                        help="ship this complete build of the default parameters (a workspace's "
                             "models/tiny-lab-<hash>) instead of building one")
    args = parser.parse_args(argv)
    from engine.jobs import build

    name = f"tiny-lab-{build.content_hash(build.resolve({}))}"
    with tempfile.TemporaryDirectory(prefix="tix-ship-") as tmp:
        out = Path(tmp) / name
        info = copy_build(args.source, out, name) if args.source else build_default(out)
        if args.check:
            shipped = shipped_folder(name)
            if shipped is None:
                print(f"no shipped model {name} to compare with", file=sys.stderr)
                return 1
            same = sha256(out / "model.safetensors") == sha256(shipped / "model.safetensors")
            print(f"{name}: weights {'identical to' if same else 'differ from'} the shipped ones")
            return 0 if same else 1
        (out / build.COMPLETE).unlink(missing_ok=True)  # the workspace copy is marked complete
        made_by = " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])])
        (out / MANIFEST).write_text(json.dumps(manifest(out, info, made_by), indent=2) + "\n")
        shutil.rmtree(SHIPPED, ignore_errors=True)
        SHIPPED.mkdir(parents=True)
        shutil.copytree(out, SHIPPED / name)
    print(f"shipped {SHIPPED / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
