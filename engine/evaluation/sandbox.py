"""Run untrusted Python (model-written code) in a separate, limited process.

`run_python(code)` is what the code scorers and code rewards call, from many threads at once.
It keeps no global state: each call makes its own temporary folder, pipe and processes.

Three processes, so that the limits are set up by trusted code and nothing outlives a call:

    tix (any thread) --Popen--> launcher --fork--> init (pid 1 of a new pid namespace)
                                                    --fork--> user: python main.py

The launcher is this file run as a script (`python -I -S sandbox.py CONFIG`), so no
`preexec_fn` runs in the forked tix process (unsafe with threads). It enters new mount, network,
pid and IPC namespaces, makes the filesystem private, enforces the wall-clock deadline and
reports what happened on a pipe. Containment, by layer (`SandboxResult.isolation` records which
were active):

- **uid**: as root, the user process runs as its own uid, `UID_BASE + launcher pid`, unique
  among live sandboxes. Linux never applies RLIMIT_NPROC to root, so this uid is what makes
  the process limit real: a fork bomb stops at `max_procs` tasks (threads count too). The uid
  also cannot write root's files or signal other processes.
- **pid**: a new pid namespace whose init is ours; when the user's main process exits, or the
  deadline passes, init exits and the kernel kills everything left in the namespace, including
  processes that called `setsid()`. Without it, the launcher is a child subreaper: orphans
  become its children, and it kills and reaps them all before it returns.
- **fs**: a private mount namespace in which every mount but /proc, /dev and /dev/pts is
  remounted read-only; /tmp and /dev/shm get fresh, small tmpfs; the working folder is its own
  tmpfs of `disk_mb`. So `open('/tmp/x', 'w')` lands in a tmpfs that vanishes with the sandbox,
  and writes anywhere else fail (EROFS). Interpreter folders the sandbox uid could not reach
  (pyenv under /root, mode 700) are bind-mounted, read-only, into a tmpfs over the blocking
  folder, which also hides the rest of it.
- **net**: a new network namespace whose only interface, loopback, is down: no connection
  goes anywhere, not even to 127.0.0.1 on the host.

Not root: the launcher asks for the same namespaces inside a new user namespace (allowed on most
distributions); there RLIMIT_NPROC counts only the sandbox's own tasks. Without user namespaces
only the rlimits remain (NPROC then counts all the user's tasks, so it is set to their current
count plus `max_procs`), and the code can write wherever the user can: `isolation` says so.
As root without the namespaces, the uid still applies if the interpreter is world-readable;
if it is not (pyenv under /root), the run is refused (status error) rather than run as root,
where nothing would bound a fork bomb. A mount namespace whose setup fails is refused too.
The rlimits (CPU, address space, file size, open files, no core dumps) and `no_new_privs`
(no setuid binaries) always apply. There is no seccomp filter, and no cgroup: the worst-case
memory of one sandbox is `max_procs` x `memory_mb` of address space plus three `disk_mb` tmpfs.

The interpreter runs with `-s -P` and a scrubbed environment instead of `-I`: `-I` implies `-E`,
which would ignore the PYTHONHASHSEED that makes string hashing (set order) deterministic; with
the environment built from scratch, `-E` would protect nothing more.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

#: Sandbox uids are UID_BASE + the launcher's pid: unique among live sandboxes, far from real users.
UID_BASE = 0x60000000
OUTPUT_CAP = 64 * 1024  # bytes of stdout and of stderr kept in the result
MAIN = "main.py"
_BACKSTOP = 10.0  # seconds past the deadline before tix kills a launcher that did not return


@dataclass(frozen=True)
class SandboxResult:
    """What one sandboxed run did.

    `status`: ok (exit 0), failed (non-zero exit: exceptions, MemoryError), timeout (wall clock
    or CPU limit), killed (another signal: a segfault, the OOM killer), error (the sandbox
    itself failed; `error` says why). `returncode` is negative for a signal, as in subprocess.
    """

    status: str
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    isolation: dict[str, bool] = field(default_factory=dict)  # uid, pid, fs, net: which were active
    truncated: bool = False  # stdout or stderr was longer than OUTPUT_CAP
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def net_isolated(self) -> bool:
        return self.isolation.get("net", False)


@dataclass(frozen=True)
class Limits:
    """Per-run limits, passed to the launcher as JSON."""

    timeout: float = 6.0  # wall clock, seconds; the CPU limit is its ceiling
    memory_mb: int = 1024  # address space per process
    max_procs: int = 16  # tasks (processes and threads) of the sandbox uid
    max_file_mb: int = 16  # largest file, stdout and stderr included
    disk_mb: int = 64  # size of each private tmpfs (working folder, /tmp, /dev/shm)


def run_python(code: str, *, timeout: float = 6.0, memory_mb: int = 1024, max_procs: int = 16,
               max_file_mb: int = 16, disk_mb: int = 64, stdin: str = "",
               namespaces: bool = True) -> SandboxResult:
    """Run `code` as `main.py` in an empty temporary folder; never raises for the code's faults.

    `namespaces=False` skips the Linux namespaces, to exercise the rlimit-only fallback.
    """
    limits = Limits(timeout, memory_mb, max_procs, max_file_mb, disk_mb)
    start = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="tix-sbx-")
    try:
        with open(os.path.join(workdir, MAIN), "w", encoding="utf-8", errors="replace") as f:
            f.write(code)
        return _run_in(workdir, limits, stdin, namespaces, start)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run_in(workdir: str, limits: Limits, stdin: str, namespaces: bool, start: float) -> SandboxResult:
    """Start the launcher with files for stdin/stdout/stderr (no pipe to drain) and wait."""
    read_fd, write_fd = os.pipe()
    config = {"workdir": workdir, "limits": limits.__dict__, "report_fd": write_fd,
              "python": sys.executable, "trees": _interpreter_trees(), "namespaces": namespaces}
    with tempfile.TemporaryFile() as inp, tempfile.TemporaryFile() as out, \
            tempfile.TemporaryFile() as err:
        inp.write(stdin.encode("utf-8", "replace"))
        inp.seek(0)
        try:
            report = _launch(config, inp, out, err, read_fd, write_fd)
        finally:
            os.close(read_fd)
        stdout, cut_out = _read_capped(out)
        stderr, cut_err = _read_capped(err)
    status, returncode = _status(report, limits)
    return SandboxResult(status, returncode, stdout, stderr, time.monotonic() - start,
                         report.get("isolation", {}), cut_out or cut_err, report.get("error", ""))


def _launch(config: dict[str, Any], inp: Any, out: Any, err: Any, read_fd: int,
            write_fd: int) -> dict[str, Any]:
    """Popen the launcher and wait; kill its process group if it overstays the backstop."""
    argv = [sys.executable, "-I", "-S", os.path.abspath(__file__), json.dumps(config)]
    try:
        proc = subprocess.Popen(argv, stdin=inp, stdout=out, stderr=err, cwd=config["workdir"],
                                env={"PATH": os.defpath}, pass_fds=(write_fd,),
                                start_new_session=True)
    except OSError as exc:
        return {"error": f"cannot start the sandbox: {exc}"}
    finally:
        os.close(write_fd)
    data, finished = _read_until_eof(read_fd, config["limits"]["timeout"] + _BACKSTOP)
    if not finished:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    report = _parse_report(data)
    if not finished:
        report.update(timeout=True, error="the launcher overstayed its deadline and was killed")
    elif proc.returncode != 0 and "error" not in report:
        report["error"] = f"the launcher exited with {proc.returncode}"
    return report


def _read_until_eof(fd: int, timeout: float) -> tuple[bytes, bool]:
    """The report pipe's bytes until the launcher closes it (it exits), or the timeout.

    Waiting on the pipe, not polling the process, returns the moment the launcher is done.
    """
    deadline = time.monotonic() + timeout
    chunks = []
    poller = select.poll()  # not select(): tix may hold more than 1024 descriptors
    poller.register(fd, select.POLLIN)
    while (left := deadline - time.monotonic()) > 0:
        if not poller.poll(left * 1000):
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
    return b"".join(chunks), False


def _interpreter_trees() -> list[str]:
    """Folders the sandboxed interpreter needs: the venv, its base install, the binary's folder."""
    exe_dir = os.path.dirname(os.path.realpath(sys.executable))
    trees = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)} | {exe_dir}
    return sorted(trees, key=len)


def _parse_report(data: bytes) -> dict[str, Any]:
    """Merge the launcher's JSON lines (isolation, then how the user process ended)."""
    report: dict[str, Any] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        with contextlib.suppress(ValueError):
            report.update(json.loads(line))
    return report


def _read_capped(f: Any) -> tuple[str, bool]:
    """The first OUTPUT_CAP bytes of an output file, and whether there was more."""
    f.seek(0)
    data = f.read(OUTPUT_CAP)
    return data.decode("utf-8", "replace"), os.fstat(f.fileno()).st_size > OUTPUT_CAP


def _status(report: dict[str, Any], limits: Limits) -> tuple[str, int | None]:
    """Map the launcher's report to (status, returncode); a CPU-limit kill is a timeout."""
    if "exit" in report:
        code = int(report["exit"])
        return ("ok" if code == 0 else "failed"), code
    if "signal" in report:
        sig = int(report["signal"])
        cpu_out = sig == signal.SIGXCPU or report.get("cpu", 0.0) >= math.ceil(limits.timeout) - 0.05
        return ("timeout" if cpu_out else "killed"), -sig
    if report.get("timeout"):
        return "timeout", None
    return "error", None


# ---------------------------------------------------------------- launcher (runs as a script)

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER = 0x00020000, 0x08000000, 0x10000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 1024, 2048, 4096, 16384
MS_NOSYMFOLLOW, MS_PRIVATE, MS_RELATIME, MS_STRICTATIME = 256, 1 << 18, 1 << 21, 1 << 24
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 36, 38
_LOCKED = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
           "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME, "strictatime": MS_STRICTATIME,
           "nosymfollow": MS_NOSYMFOLLOW}
_KEEP_WRITABLE = ("/dev", "/dev/pts")  # device nodes (/dev/null, ttys), writable by root alone
_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8", "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class _Libc:
    """The few libc calls Python 3.11 lacks (unshare, mount, prctl), raising OSError on failure."""

    def __init__(self) -> None:
        self.lib = ctypes.CDLL(None, use_errno=True)

    def call(self, name: str, *args: Any) -> None:
        if getattr(self.lib, name)(*args) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"{name}{args[:2]}: {os.strerror(errno)}")

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int,
              data: str | None = None) -> None:
        enc = [s.encode() if s is not None else None for s in (source, target, fstype, data)]
        self.call("mount", enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3])

    def prctl(self, option: int, value: int) -> None:
        self.call("prctl", option, ctypes.c_ulong(value), ctypes.c_ulong(0), ctypes.c_ulong(0),
                  ctypes.c_ulong(0))


def _report(fd: int, **fields: Any) -> None:
    """One JSON line to tix; small enough to be atomic on a pipe."""
    with contextlib.suppress(OSError):
        os.write(fd, (json.dumps(fields) + "\n").encode())


def _launcher_main(config: dict[str, Any]) -> None:
    """Isolate, start init (or the user process directly), wait for it within the deadline."""
    fd = config["report_fd"]
    os.set_inheritable(fd, False)  # the user process must not hold the report pipe open
    libc, root = _Libc(), os.geteuid() == 0
    namespaces = config["namespaces"] and _unshare(libc, root)
    uid = UID_BASE + os.getpid() if root else None
    _report(fd, isolation={"uid": root, "pid": namespaces, "fs": namespaces, "net": namespaces})
    if namespaces:
        refusal = _private_fs(libc, config, os.getuid() if uid is None else uid)
    else:
        refusal = _share_workdir(config, uid) if uid is not None else ""
    if refusal:
        _report(fd, error=refusal)
        return
    if not namespaces:  # orphans of the user's processes become ours, to kill and reap
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1)
    child = os.fork()
    if child == 0:
        _child(libc, config, uid, namespaces)
    _supervise(config, child, namespaces)


def _unshare(libc: _Libc, root: bool) -> bool:
    """Enter new mount, net, pid and IPC namespaces (in a new user namespace if not root)."""
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC
    uid, gid = os.getuid(), os.getgid()
    try:
        libc.call("unshare", flags if root else flags | CLONE_NEWUSER)
    except OSError:
        return False
    if not root:  # map ourselves to ourselves, so files keep their owner and the caps work here
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                           ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    return True


def _private_fs(libc: _Libc, config: dict[str, Any], owner: int) -> str:
    """Read-only everything, fresh tmpfs on /tmp and /dev/shm, the workdir a tmpfs of its own.

    Returns why not, if a step failed: the namespace is then half made, so the run is refused.
    """
    try:
        libc.mount(None, "/", None, MS_REC | MS_PRIVATE)
        workdir, code = config["workdir"], _read_main(config["workdir"])
        trees = [(t, os.open(t, os.O_PATH | os.O_DIRECTORY)) for t in config["trees"]]
        _remount_read_only(libc)
        size = config["limits"]["disk_mb"]
        for path in ("/tmp", "/dev/shm"):
            if os.path.isdir(path):
                libc.mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size}m,mode=1777")
        _expose(libc, trees, owner != os.getuid())
        _make_workdir(libc, workdir, size, owner, code)
        return ""
    except OSError as exc:
        return f"refusing to run: the private filesystem could not be set up ({exc})"


def _read_main(workdir: str) -> bytes:
    with open(os.path.join(workdir, MAIN), "rb") as f:
        return f.read()


def _mounts() -> list[tuple[str, set[str]]]:
    """(mount point, per-mount options) from /proc/self/mountinfo, octal escapes decoded."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), parts[4])
            out.append((point, set(parts[5].split(","))))
    return out


def _remount_read_only(libc: _Libc) -> None:
    """Bind-remount every mount read-only, keeping its nosuid/nodev/noexec/atime flags.

    /proc is left for init's fresh one; /dev and /dev/pts hold device nodes, not files to fill.
    """
    for point, options in _mounts():
        if "ro" in options or point in _KEEP_WRITABLE or point == "/proc" or point.startswith("/proc/"):
            continue
        locked = sum(flag for name, flag in _LOCKED.items() if name in options)
        libc.mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | locked)


def _expose(libc: _Libc, trees: list[tuple[str, int]], other_uid: bool) -> None:
    """Make the interpreter's folders reachable again: masked by our tmpfs, or behind mode 700."""
    masked: set[str] = set()
    for path, fd in trees:
        if _same_dir(path, fd) and (not other_uid or _blocking_ancestor(path) is None):
            os.close(fd)
            continue
        blocker = _blocking_ancestor(path) if other_uid else None
        if blocker is not None and blocker not in masked:
            libc.mount("tmpfs", blocker, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
            masked.add(blocker)
        os.makedirs(path, exist_ok=True)
        libc.mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        os.close(fd)


def _same_dir(path: str, fd: int) -> bool:
    try:
        here, there = os.stat(path), os.fstat(fd)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _blocking_ancestor(path: str) -> str | None:
    """The first folder on `path` that other users cannot search (x bit), if any."""
    parts = path.strip("/").split("/")
    for i in range(1, len(parts) + 1):
        prefix = "/" + "/".join(parts[:i])
        try:
            mode = os.stat(prefix).st_mode
        except OSError:
            return None
        if not mode & 0o001:
            return prefix
    return None


def _make_workdir(libc: _Libc, workdir: str, size_mb: int, owner: int, code: bytes) -> None:
    """The working folder: a tmpfs owned by the sandbox uid, holding only main.py."""
    os.makedirs(workdir, exist_ok=True)
    libc.mount("tmpfs", workdir, "tmpfs", MS_NOSUID | MS_NODEV,
               f"size={size_mb}m,nr_inodes=4096,mode=700,uid={owner},gid={owner}")
    path = os.path.join(workdir, MAIN)
    with open(path, "wb") as f:
        f.write(code)
    os.chown(path, owner, owner)


def _share_workdir(config: dict[str, Any], uid: int) -> str:
    """Without a private fs: give the workdir to the sandbox uid; why not, if it cannot run."""
    for tree in config["trees"]:
        if blocker := _blocking_ancestor(tree):
            return (f"refusing to run: as root without a mount namespace the code must run as its "
                    f"own uid (root ignores RLIMIT_NPROC), and that uid cannot reach the "
                    f"interpreter under {blocker}; give tix CAP_SYS_ADMIN or a world-readable Python")
    for path in (config["workdir"], os.path.join(config["workdir"], MAIN)):
        os.chown(path, uid, uid)
    return ""


def _child(libc: _Libc, config: dict[str, Any], uid: int | None, pid_ns: bool) -> None:
    """In a pid namespace this is init; otherwise it becomes the user process itself."""
    try:
        if not pid_ns:
            os.setpgid(0, 0)
            _become_user(libc, config, uid)
        _init(libc, config, uid)
    except Exception:  # noqa: BLE001 - any setup failure is reported, never raised into the launcher
        _report(config["report_fd"], error=traceback.format_exc(limit=3))
    finally:
        os._exit(127)  # a forked child never returns into the launcher's code


def _init(libc: _Libc, config: dict[str, Any], uid: int | None) -> None:
    """pid 1: start the user process, reap orphans until it exits, report how it ended."""
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    with contextlib.suppress(OSError):  # a /proc that shows only the sandbox's processes
        libc.mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    user = os.fork()
    if user == 0:
        try:
            _become_user(libc, config, uid)
        except Exception:  # noqa: BLE001 - as in _child: report, then exit
            _report(config["report_fd"], error=traceback.format_exc(limit=3))
        finally:
            os._exit(127)
    while True:
        pid, status, usage = os.wait4(-1, 0)
        if pid == user:
            break
    _report(config["report_fd"], **_ending(status, usage))
    os._exit(0)  # the kernel now kills whatever the user process left in the namespace


def _become_user(libc: _Libc, config: dict[str, Any], uid: int | None) -> None:
    """Limits, identity and exec: the last trusted steps before the untrusted code."""
    workdir = config["workdir"]
    os.chdir(workdir)
    _set_limits(config["limits"], uid)
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    env = {**_ENV, "HOME": workdir, "TMPDIR": workdir}
    python = config["python"]
    os.execve(python, [python, "-s", "-P", MAIN], env)


def _set_limits(limits: dict[str, Any], uid: int | None) -> None:
    cpu = math.ceil(limits["timeout"])
    memory, file_size = limits["memory_mb"] << 20, limits["max_file_mb"] << 20
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    nproc = _nproc_limit(limits["max_procs"], uid)
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))


def _nproc_limit(max_procs: int, uid: int | None) -> int:
    """RLIMIT_NPROC counts every task of the real uid, in its user namespace, against the limit."""
    if uid is not None:
        return max_procs  # its own uid: only the sandbox's tasks count
    if _in_new_user_namespace():
        return max_procs + 2  # counted per user namespace, where launcher and init live too
    return _tasks_of(os.getuid()) + max_procs


def _in_new_user_namespace() -> bool:
    with open("/proc/self/uid_map") as f:
        return f.read().split()[:3] != ["0", "0", "4294967295"]


def _tasks_of(uid: int) -> int:
    """Tasks (threads included) whose real uid is `uid`, as the kernel counts for NPROC."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{entry}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            if int(fields["Uid"].split()[0]) == uid:
                total += int(fields["Threads"])
    return total


def _supervise(config: dict[str, Any], child: int, pid_ns: bool) -> None:
    """Wait for init (or the user process) until the deadline; then kill and clean up."""
    fd = config["report_fd"]
    if _wait_until(child, config["limits"]["timeout"]):
        _, status, usage = os.wait4(child, 0)
        if not pid_ns:
            _report(fd, **_ending(status, usage))
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
        os.wait4(child, 0)  # init's exit waits for the namespace to empty
        _report(fd, timeout=True)
    if not pid_ns:
        _kill_leftovers(child)


def _wait_until(pid: int, timeout: float) -> bool:
    """True once `pid` has exited (not reaped), False if `timeout` seconds pass first."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        return _poll_until(pid, timeout)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(timeout * 1000))
    finally:
        os.close(pidfd)


def _poll_until(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        time.sleep(0.01)
    return False


def _ending(status: int, usage: Any) -> dict[str, Any]:
    cpu = usage.ru_utime + usage.ru_stime
    if os.WIFSIGNALED(status):
        return {"signal": os.WTERMSIG(status), "cpu": cpu}
    return {"exit": os.waitstatus_to_exitcode(status), "cpu": cpu}


def _kill_leftovers(group: int) -> None:
    """Without a pid namespace: kill the user's process group, then every remaining descendant.

    The launcher is a child subreaper, so orphans (double forks, `setsid()` escapees) become
    its children: killing and reaping its children round by round ends with none left.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)
    while kids := _children():
        for kid in kids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(kid, signal.SIGKILL)
        for kid in kids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(kid, 0)


def _children() -> list[int]:
    """Our children, zombies included, from /proc/PID/stat (field 4 is the parent pid)."""
    me, kids = str(os.getpid()), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError), open(f"/proc/{entry}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[1] == me:
                    kids.append(int(entry))
    return kids


if __name__ == "__main__":
    _launcher_main(json.loads(sys.argv[1]))
