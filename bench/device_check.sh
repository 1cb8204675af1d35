#!/usr/bin/env bash
# The GPU check for a lent machine: one H100 or H200, a bare image (Python 3.12, torch, transformers,
# accelerate, peft, pyarrow, numpy, pandas, nvidia-ml-py, pytest, pytest-xdist), no network.
#
# Before: `make device-kit` here (the wheels tix needs beyond that image, in .device-kit/, which
# travels with the working tree). On the machine, from the repository root:
#     bash bench/device_check.sh            # $OUT (default ./device-check-out) gets device_check.json
#     bash bench/device_check.sh --cpu      # the same checks on this box's CPU, smaller (tests the script)
#
# It installs the kit with `pip install --no-index --no-deps --target` (only the wheels the image
# lacks, then tix's own wheel; stand-ins for cellpylib and pycosat, see bench/device-kit.txt), then
# runs five checks, each under its own time limit (about 7.5 minutes in all), one line each:
#   doctor    tix doctor and the GPU tests (tests/gpu)
#   lab       the tiny lab through the daemon (tix demo: shipped base, SFT, GRPO with HF rollouts,
#             evaluations, analyses, TI table), on CUDA in bf16
#   nvml      NVML scheduling: a run waits while another process holds GPU memory, starts when it exits
#   generate  tix's HF backend against a bare generate loop on a ~100M-parameter model built here
#   sft       SFT steps through tix against trl alone
# The figures go to $OUT/device_check.json after every check (bench/device_check.py writes them).
# Exit status: the number of failed checks (0: all passed).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CPU=()
if [[ "${1:-}" == "--cpu" ]]; then CPU=(--cpu); fi
PY=${PYTHON:-python3}
KIT=${DEVICE_KIT:-$ROOT/.device-kit}
OUT=${OUT:-$ROOT/device-check-out}
WORK=${DEVICE_WORK:-$(mktemp -d /tmp/tix-device-check-XXXXXX)}
TARGET=$WORK/site
JSON=$OUT/device_check.json
mkdir -p "$OUT" "$WORK"
rm -f "$JSON"
FAILED=0
STARTED=$(date +%s)

check() {  # check NAME LIMIT_SECONDS: one line, whatever happens; cleanup after a timeout
  local name=$1 limit=$2 rc=0
  timeout -k 10 "$limit" "$PY" bench/device_check.py "$name" "${CPU[@]}" --json "$JSON" --work "$WORK" \
    >"$WORK/$name.log" 2>&1 || rc=$?
  grep -E "^(ok|FAIL|skip) +$name:" "$WORK/$name.log" || true
  if [[ $rc -eq 124 || $rc -eq 137 ]]; then
    "$PY" bench/device_check.py record "$name" FAIL "timed out after ${limit} s (log: $WORK/$name.log)" --json "$JSON"
    "$PY" bench/device_check.py cleanup "$WORK/home-$name" >/dev/null 2>&1 || true
  elif [[ $rc -ne 0 ]] && ! grep -qE "^FAIL +$name:" "$WORK/$name.log"; then
    "$PY" bench/device_check.py record "$name" FAIL "exit $rc: $(tail -c 300 "$WORK/$name.log" | tr '\n' ' ')" \
      --json "$JSON" || echo "FAIL $name: exit $rc"
  fi
  if [[ $rc -ne 0 ]]; then FAILED=$((FAILED + 1)); tail -n 30 "$WORK/$name.log" >&2; fi
  cp "$WORK/$name.log" "$OUT/$name.log" 2>/dev/null || true
}

install_kit() {  # the kit's wheels the image lacks, tix --no-deps, the stand-ins; the import check
  local wheels
  [[ -d "$KIT" ]] || { echo "FAIL install: no kit at $KIT (run make device-kit first)"; return 1; }
  mapfile -t wheels < <("$PY" bench/device_kit.py plan "$KIT")
  "$PY" -m pip install -q --no-index --no-deps --disable-pip-version-check --target "$TARGET" "${wheels[@]}"
  if ! ls "$KIT"/tix-*.whl >/dev/null 2>&1; then  # an old kit: build tix here (no network: no isolation)
    "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --target "$TARGET" "$ROOT"
  fi
  local stubs
  stubs=$(PYTHONPATH="$TARGET" "$PY" bench/device_kit.py stubs "$TARGET")
  # the working tree first (its code is what is checked), then the kit
  export PYTHONPATH="$ROOT:$TARGET${PYTHONPATH:+:$PYTHONPATH}" PATH="$TARGET/bin:$PATH" TIX_BIN="$TARGET/bin/tix"
  "$PY" -c "import engine.cli, engine.daemon.server, engine.jobs.train, engine.jobs.eval, engine.jobs.analyse, \
engine.lab.data, engine.evaluation.scorers, tui.app, trl, datasets, duckdb, textual, plotext, reasoning_gym, math_verify"
  "$TIX_BIN" --help >/dev/null
  local mib
  mib=$(du -sm "$TARGET" | cut -f1)
  "$PY" bench/device_check.py record install ok \
    "${#wheels[@]} wheels from the kit ($(du -sm "$KIT" | cut -f1) MiB) into $TARGET (${mib} MiB), stand-ins: $stubs" \
    --json "$JSON"
}

if ! install_kit >"$WORK/install.log" 2>&1; then
  cat "$WORK/install.log"
  "$PY" bench/device_check.py record install FAIL "$(tail -c 300 "$WORK/install.log" | tr '\n' ' ')" \
    --json "$JSON" 2>/dev/null || echo "FAIL install: see $WORK/install.log"
  exit 1
fi
grep -E "^(ok|FAIL) +install:" "$WORK/install.log"
export PYTHONPATH="$ROOT:$TARGET${PYTHONPATH:+:$PYTHONPATH}" PATH="$TARGET/bin:$PATH" TIX_BIN="$TARGET/bin/tix"
export HF_HUB_OFFLINE=1 TRANSFORMERS_NO_ADVISORY_WARNINGS=1 TOKENIZERS_PARALLELISM=false

check doctor 90
check lab "${LAB_LIMIT:-200}"
check nvml 50
check generate 60
check sft 60

echo "device check: $((5 - FAILED)) of 5 checks passed in $(( $(date +%s) - STARTED )) s; figures in $JSON"
exit "$FAILED"
