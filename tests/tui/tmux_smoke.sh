#!/usr/bin/env bash
# Smoke test of the TUI in a real terminal: start `tix` in tmux at 80x24, check the runs
# dashboard, open the TI view with its key (3), export the table (e, then enter twice in the
# export dialog: the format, then the path), quit with q, and check what the panes showed.
#
#   TIX_HOME=/path/to/workspace tests/tui/tmux_smoke.sh
#
# TIX_HOME must hold runs (e.g. `python -m tests.tui.recorded DIR`); TIX (default: `tix` on
# PATH) is the command to start. The export lands in SMOKE_DIR (default: a new temporary
# folder), the working directory of the app. Uses a private tmux server, so a tmux you have
# open is left alone. Exit status 0 when every check passed; the captures stay in SMOKE_DIR.
set -euo pipefail

: "${TIX_HOME:?set TIX_HOME to a workspace with runs}"
TIX=${TIX:-tix}
SMOKE_DIR=${SMOKE_DIR:-$(mktemp -d)}
SOCKET="tix-smoke-$$"
SESSION=smoke
tmx() { tmux -L "$SOCKET" "$@"; }
trap 'tmx kill-server 2>/dev/null || true' EXIT

fail() { echo "tmux smoke: FAIL: $*" >&2; echo "--- last screen ---" >&2; cat "$SMOKE_DIR/last.txt" >&2 || true; exit 1; }
capture() { tmx capture-pane -p -t "$SESSION" > "$SMOKE_DIR/last.txt" 2>/dev/null || true; }
wait_for() {  # wait_for TEXT [SECONDS]: until the pane shows TEXT
    local deadline=$((SECONDS + ${2:-30}))
    while ((SECONDS < deadline)); do
        capture
        grep -qF -- "$1" "$SMOKE_DIR/last.txt" && return 0
        sleep 0.2
    done
    fail "the screen never showed '$1'"
}

cd "$SMOKE_DIR"
env_vars=(TIX_HOME TIX_TICK TIX_IDLE_TIMEOUT TIX_GPUS TIX_CANCEL_GRACE)
env_args=()
for name in "${env_vars[@]}"; do
    [[ -n "${!name:-}" ]] && env_args+=("$name=${!name}")
done
tmx -f /dev/null new-session -d -s "$SESSION" -x 80 -y 24 \
    "env TERM=xterm-256color ${env_args[*]} $TIX; echo \"tix exited with \$?\"; sleep 30"

wait_for "by created" 60
deadline=$((SECONDS + 30))
until grep -qE " [1-9][0-9,]* runs " "$SMOKE_DIR/last.txt"; do  # loaded from the daemon
    ((SECONDS < deadline)) || fail "no runs shown"
    sleep 0.2
    capture
done
cp "$SMOKE_DIR/last.txt" "$SMOKE_DIR/dashboard.txt"
grep -qF "1 Runs" "$SMOKE_DIR/dashboard.txt" || fail "no screen tabs"

tmx send-keys -t "$SESSION" 3
wait_for "3 TI" 10
sleep 1
capture
cp "$SMOKE_DIR/last.txt" "$SMOKE_DIR/ti.txt"
if grep -qF "is not available" "$SMOKE_DIR/ti.txt"; then
    echo "tmux smoke: the TI screen is a placeholder; export not tried"
else
    wait_for "TI v" 20
    cp "$SMOKE_DIR/last.txt" "$SMOKE_DIR/ti.txt"
    tmx send-keys -t "$SESSION" e
    wait_for "Export" 10
    tmx send-keys -t "$SESSION" Enter
    sleep 0.5
    tmx send-keys -t "$SESSION" Enter
    deadline=$((SECONDS + 10))
    until compgen -G "$SMOKE_DIR/tix-ti-*" > /dev/null; do
        ((SECONDS < deadline)) || { capture; fail "e + enter + enter wrote no tix-ti-* file in $SMOKE_DIR"; }
        sleep 0.2
    done
    echo "tmux smoke: exported $(ls "$SMOKE_DIR"/tix-ti-*)"
fi

tmx send-keys -t "$SESSION" q
wait_for "tix exited with 0" 10
echo "tmux smoke: ok (captures in $SMOKE_DIR)"
