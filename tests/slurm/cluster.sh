#!/usr/bin/env bash
# Throw-away one-node Slurm cluster (munged + slurmctld + slurmd) living entirely under DIR.
#
#   eval "$(tests/slurm/cluster.sh start DIR)"   # prints: export SLURM_CONF=DIR/slurm.conf
#   tests/slurm/cluster.sh stop DIR
#   tests/slurm/cluster.sh status DIR            # exit 0 iff the node is up
#
# Must run as root (slurmd/slurmstepd need it).  Packages: tests/slurm/install.sh.
# Everything (config, state, spool, logs, munge key+socket, pid files, fake GPU
# device nodes) lives under DIR; only the TCP ports and the Slurm cgroup tree
# (/sys/fs/cgroup/*/slurm_localhost, removed by slurmd when empty) are global.  Only stdout carries the exports; all
# diagnostics go to stderr.
#
# Tunables (env):
#   TIX_SLURM_CPUS=4        CPUs declared on the node (may exceed nproc; config_overrides)
#   TIX_SLURM_MEM_MB=4096   RealMemory declared on the node
#   TIX_SLURM_GPUS=2        fake GPUs (gres gpu, char devices DIR/dev/fakegpuN)
#   TIX_SLURM_PORT=16817    slurmctld port; slurmd uses PORT+1
#   TIX_SLURM_WAIT=30       seconds to wait for the node to become idle
#   TIX_SLURM_PROCTRACK=auto|cgroup|linuxproc
#   TIX_SLURM_CRED_EXPIRE=10  credential lifetime = delay before a requeued job may restart
#   TIX_SLURM_DEBUG=info    SlurmctldDebug/SlurmdDebug
set -euo pipefail

export PATH="$PATH:/usr/sbin:/sbin"

CPUS=${TIX_SLURM_CPUS:-4}
MEM_MB=${TIX_SLURM_MEM_MB:-4096}
GPUS=${TIX_SLURM_GPUS:-2}
CTLD_PORT=${TIX_SLURM_PORT:-16817}
SLURMD_PORT=$((CTLD_PORT + 1))
WAIT_S=${TIX_SLURM_WAIT:-30}
PROCTRACK=${TIX_SLURM_PROCTRACK:-auto}
NODE=localhost
log() { echo "cluster.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
    echo "usage: $0 start|stop|status DIR" >&2
    exit 2
}

[[ $# -eq 2 ]] || usage
CMD=$1
DIR=$(realpath -m -- "$2")
[[ $DIR != / ]] || die "refusing DIR=/"

CONF=$DIR/slurm.conf
MUNGE_DIR=$DIR/munge
MUNGE_SOCK=$MUNGE_DIR/munge.socket.2
RUN=$DIR/run
LOGD=$DIR/log

# ---------------------------------------------------------------- processes

# cmdline of PID with NULs turned into spaces ("" if gone)
cmdline() { { tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null || true; }

# is PID alive and one of ours (daemon NAME started for this DIR)?
is_ours() {
    local pid=$1 name=$2 cl
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    cl=$(cmdline "$pid")
    [[ $cl == *"$name"* && $cl == *"$DIR/"* ]]
}

# Slurm/munge processes belonging to this DIR: comm slurm*/munge* and cwd or an
# open fd under DIR/ (slurmstepd overwrites its argv+environ, but keeps cwd=DIR/log
# and the slurmd.log fd).  Never the caller: $$ is excluded.
our_procs() {
    local d pid comm
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        [[ $pid != "$$" ]] || continue
        comm=""
        read -r comm 2>/dev/null <"$d/comm" || continue
        [[ $comm == slurm* || $comm == munge* ]] || continue
        if [[ -n $(find "$d/cwd" "$d/fd/" -maxdepth 1 -lname "$DIR/*" -print -quit 2>/dev/null) ]]; then
            echo "$pid"
        fi
    done
}

# pids in the Slurm job cgroups (freezer, cgroup v1) of the given slurmstepd pids;
# job cgroup dirs go to stdout as "cg:PATH" lines too (for rmdir afterwards)
job_cgroup_procs() {
    local pid path dir f
    for pid in "$@"; do
        path=$(sed -n 's/^[0-9]*:freezer:\(.*\)$/\1/p' "/proc/$pid/cgroup" 2>/dev/null) || continue
        # only ever a Slurm job cgroup, never "/" or a foreign one
        [[ $path =~ ^(/slurm[^/]*/uid_[0-9]+/job_[0-9]+) ]] || continue
        dir=/sys/fs/cgroup/freezer${BASH_REMATCH[1]}
        [[ -d $dir ]] || continue
        echo "cg:$dir"
        while IFS= read -r f; do
            cat "$f" 2>/dev/null || true
        done < <(find "$dir" -name cgroup.procs 2>/dev/null)
    done
}

# PIDs given + all their descendants
with_descendants() {
    local -A kids=()
    local f rest pid ppid
    for f in /proc/[0-9]*/stat; do
        rest=$(cat "$f" 2>/dev/null) || continue
        pid=${rest%% *}
        rest=${rest##*) }     # after "(comm) "
        read -r _ ppid _ <<<"$rest"
        kids[$ppid]+=" $pid"
    done
    local -a todo=("$@") out=()
    while ((${#todo[@]})); do
        pid=${todo[0]}
        todo=("${todo[@]:1}")
        out+=("$pid")
        # shellcheck disable=SC2206
        [[ -z ${kids[$pid]:-} ]] || todo+=(${kids[$pid]})
    done
    printf '%s\n' "${out[@]}" | sort -un | tr '\n' ' '
}

alive_any() {
    local p
    for p in "$@"; do kill -0 "$p" 2>/dev/null && return 0; done
    return 1
}

# TERM, wait up to $1 s, then KILL the remaining pids
term_wait_kill() {
    local secs=$1
    shift
    (($#)) || return 0
    kill -TERM "$@" 2>/dev/null || true
    local i
    for ((i = 0; i < secs * 10; i++)); do
        alive_any "$@" || return 0
        sleep 0.1
    done
    log "KILL after ${secs}s: $*"
    kill -KILL "$@" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do
        alive_any "$@" || return 0
        sleep 0.1
    done
}

# pid recorded for daemon NAME, if that process is alive and ours
daemon_pid() {
    local pidf=$RUN/$1.pid pid
    [[ -f $pidf ]] || return 0
    pid=$(<"$pidf")
    if is_ours "$pid" "$1"; then echo "$pid"; fi
}

ctld_up() {
    [[ -f $CONF ]] && [[ -f $RUN/slurmctld.pid ]] && is_ours "$(<"$RUN/slurmctld.pid")" slurmctld
}

cluster_stop() {
    [[ -d $DIR ]] || return 0
    # 1. kill this cluster's running jobs through its own controller.
    if ctld_up; then
        local ids
        ids=$(SLURM_CONF=$CONF timeout 5 squeue -h -o %i -t RUNNING,SUSPENDED,COMPLETING,CONFIGURING 2>/dev/null | tr '\n' ' ') || ids=""
        if [[ -n ${ids// /} ]]; then
            # shellcheck disable=SC2086
            SLURM_CONF=$CONF timeout 5 scancel --signal=KILL --full $ids 2>/dev/null || true
            local i
            for ((i = 0; i < 50; i++)); do
                [[ -z $(SLURM_CONF=$CONF timeout 5 squeue -h -o %i -t RUNNING,SUSPENDED,CONFIGURING,COMPLETING 2>/dev/null) ]] && break
                sleep 0.1
            done
        fi
    fi
    # 2. remember slurmstepd + job processes now: they survive slurmd and are
    #    re-parented to init once slurmstepd dies.
    local -a procs strays=() cgdirs=()
    local line
    read -r -d '' -a procs < <(our_procs) || true
    while IFS= read -r line; do
        if [[ $line == cg:* ]]; then cgdirs+=("${line#cg:}"); else strays+=("$line"); fi
    done < <(job_cgroup_procs "${procs[@]}")
    read -r -a strays <<<"$(with_descendants "${procs[@]}" "${strays[@]}")" || true
    # 3. the daemons, by recorded pid.  Each needs ~2 s to exit on TERM, so
    #    signal all three at once.
    local -a daemons=()
    local d pid
    for d in slurmd slurmctld munged; do
        pid=$(daemon_pid "$d")
        [[ -z $pid ]] || daemons+=("$pid")
    done
    term_wait_kill 10 "${daemons[@]}"
    rm -f "$RUN"/*.pid
    # 4. leftovers of ours only.
    local -a left=()
    local p
    for p in $({ printf '%s\n' "${strays[@]}"; our_procs; } | sort -un); do
        kill -0 "$p" 2>/dev/null && left+=("$p")
    done
    if ((${#left[@]})); then
        log "killing leftover processes: ${left[*]}"
        term_wait_kill 1 "${left[@]}"
    fi
    for d in "${cgdirs[@]}"; do
        find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
}

# ---------------------------------------------------------------- config

choose_proctrack() {
    case $PROCTRACK in
    cgroup | linuxproc) ;;
    auto)
        if [[ -d /sys/fs/cgroup/freezer && -w /sys/fs/cgroup/freezer ]]; then
            PROCTRACK=cgroup # cgroup v1 hierarchy
        else
            PROCTRACK=linuxproc
        fi
        ;;
    *) die "TIX_SLURM_PROCTRACK must be auto|cgroup|linuxproc" ;;
    esac
}

write_configs() {
    local task
    if [[ $PROCTRACK == cgroup ]]; then task=task/cgroup; else task=task/none; fi
    local gres="" gpu_max=$((GPUS - 1))
    ((GPUS > 0)) && gres=" Gres=gpu:$GPUS"

    cat >"$CONF" <<EOF
# generated by tests/slurm/cluster.sh -- throw-away test cluster
ClusterName=tix
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire also delays the restart of a requeued job (EligibleTime=now+cred_expire+1, default 120 s)
AuthInfo=socket=$MUNGE_SOCK,cred_expire=${TIX_SLURM_CRED_EXPIRE:-10}
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGD/slurmctld.log
SlurmdLogFile=$LOGD/slurmd.log
SlurmctldDebug=${TIX_SLURM_DEBUG:-info}
SlurmdDebug=${TIX_SLURM_DEBUG:-info}
ProctrackType=proctrack/$PROCTRACK
TaskPlugin=$task
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/jobcomp.log
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=1,bf_interval=1,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
GresTypes=gpu
SlurmdParameters=config_overrides
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
ReturnToService=2
JobRequeue=1
MinJobAge=300
KillWait=5
OverTimeLimit=0
InactiveLimit=0
Waittime=0
MessageTimeout=10
SlurmctldTimeout=30
SlurmdTimeout=300
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$CPUS RealMemory=$MEM_MB$gres State=UNKNOWN
PartitionName=gpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=cpu Nodes=$NODE Default=NO MaxTime=INFINITE State=UP
EOF

    {
        echo "AutoDetect=off"
        ((GPUS > 0)) && echo "NodeName=$NODE Name=gpu File=$DIR/dev/fakegpu[0-$gpu_max]"
    } >"$DIR/gres.conf"

    cat >"$DIR/cgroup.conf" <<EOF
CgroupPlugin=autodetect
CgroupMountpoint=/sys/fs/cgroup
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainSwapSpace=no
ConstrainDevices=no
EOF
}

make_fake_gpus() {
    mkdir -p "$DIR/dev"
    local i
    for ((i = 0; i < GPUS; i++)); do
        rm -f "$DIR/dev/fakegpu$i"
        # nvidia major 195; a plain file is the fallback where mknod is denied
        mknod -m 666 "$DIR/dev/fakegpu$i" c 195 "$i" 2>/dev/null || touch "$DIR/dev/fakegpu$i"
    done
}

# ---------------------------------------------------------------- start

tail_logs() {
    local f
    for f in "$LOGD"/*.log; do
        [[ -f $f ]] || continue
        echo "----- tail $f" >&2
        tail -n 25 "$f" >&2 || true
    done
}

fail_start() {
    log "ERROR: $*"
    tail_logs
    cluster_stop || true
    exit 1
}

# daemon launcher: SLURM_CONF pointing at our config
launch() {
    env SLURM_CONF="$CONF" "$@"
}

wait_for() { # wait_for SECS DAEMON DESCRIPTION CMD...   (fails fast if DAEMON died)
    local secs=$1 daemon=$2 what=$3
    shift 3
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || fail_start "timeout after ${secs}s waiting for $what"
        if [[ -f $RUN/$daemon.pid && -z $(daemon_pid "$daemon") ]]; then
            fail_start "$daemon exited while waiting for $what"
        fi
        sleep 0.1
    done
}

node_idle() {
    # one line per partition, so de-duplicate
    [[ $(SLURM_CONF=$CONF sinfo -h -N -n "$NODE" -o '%t' 2>/dev/null | sort -u) == idle ]]
}

munge_ok() {
    munge -n -S "$MUNGE_SOCK" | unmunge -S "$MUNGE_SOCK"
}

cluster_start() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (slurmd needs it); try sudo"
    local b
    for b in munged munge slurmctld slurmd sinfo scontrol; do
        command -v "$b" >/dev/null || die "$b not found; run tests/slurm/install.sh"
    done

    if [[ -n $(daemon_pid slurmd)$(daemon_pid slurmctld)$(daemon_pid munged)$(our_procs) ]]; then
        log "stopping previous cluster in $DIR"
        cluster_stop
    fi

    local port
    for port in "$CTLD_PORT" "$SLURMD_PORT"; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            die "port $port is in use (another cluster?); stop it or set TIX_SLURM_PORT"
        fi
    done

    choose_proctrack
    mkdir -p "$DIR"
    chmod 755 "$DIR"
    # wipe everything we own (state survives restarts otherwise: drain reasons, jobs)
    rm -rf "${DIR:?}/state" "${DIR:?}/spool" "$LOGD" "$RUN" "$MUNGE_DIR" "${DIR:?}/dev" "${DIR:?}/jobcomp.log"
    mkdir -p "$DIR/state" "$DIR/spool" "$LOGD" "$RUN" "$MUNGE_DIR"
    chmod 755 "$DIR/state" "$DIR/spool" "$LOGD" "$RUN" "$MUNGE_DIR"
    make_fake_gpus
    write_configs

    # munge: private key + socket under DIR
    (umask 077 && dd if=/dev/urandom of="$MUNGE_DIR/munge.key" bs=1024 count=1 status=none)
    chmod 600 "$MUNGE_DIR/munge.key"
    launch munged --force \
        --socket="$MUNGE_SOCK" \
        --key-file="$MUNGE_DIR/munge.key" \
        --pid-file="$RUN/munged.pid" \
        --log-file="$LOGD/munged.log" \
        --seed-file="$MUNGE_DIR/munged.seed" \
        </dev/null >>"$LOGD/munged.out" 2>&1 ||
        fail_start "munged failed to start"
    wait_for 10 munged "munged socket" munge_ok

    launch slurmctld -f "$CONF" -c -i </dev/null >>"$LOGD/slurmctld.out" 2>&1 ||
        fail_start "slurmctld failed to start"
    wait_for 15 slurmctld "slurmctld (scontrol ping)" env SLURM_CONF="$CONF" scontrol ping

    launch slurmd -f "$CONF" -N "$NODE" </dev/null >>"$LOGD/slurmd.out" 2>&1 ||
        fail_start "slurmd failed to start"
    wait_for "$WAIT_S" slurmd "node $NODE idle in sinfo" node_idle

    log "up: $DIR (proctrack/$PROCTRACK, ports $CTLD_PORT/$SLURMD_PORT, ${CPUS} cpus, ${GPUS} gpus)"
    echo "export SLURM_CONF=$CONF"
}

case $CMD in
start) cluster_start ;;
stop)
    cluster_stop
    log "stopped: $DIR"
    ;;
status)
    # prints the node state (idle, mix, alloc, ...); exit 1 if the cluster does not answer
    [[ -f $CONF ]] || exit 1
    state=$(SLURM_CONF=$CONF timeout 5 sinfo -h -N -n "$NODE" -o '%t' 2>/dev/null | sort -u) || exit 1
    [[ -n $state ]] || exit 1
    echo "$state"
    ;;
*) usage ;;
esac
