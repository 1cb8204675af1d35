#!/usr/bin/env bash
# Install the Slurm + munge packages needed by tests/slurm/cluster.sh (Debian/Ubuntu).
# No-op when sbatch, slurmctld, slurmd and munged are already on PATH.
set -euo pipefail

have_all() {
    local b
    for b in sbatch slurmctld slurmd munged; do
        command -v "$b" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$b" >/dev/null 2>&1 || return 1
    done
}

if have_all; then
    echo "slurm already installed" >&2
    exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
# Debian's postinst tries to start the services; policy-rc.d / no systemd makes that a no-op.
$SUDO apt-get update -qq
$SUDO apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge
