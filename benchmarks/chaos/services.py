"""The chaos harness's own Redis and PostgreSQL, and the processes it may kill.

Every service here is started by the harness on a free port in its own temporary
directory, so a `kill -9` never touches the machine's shared Redis (6379) or
PostgreSQL (5432). Each class knows its process ids and stops only those.

- `RedisProc`: `redis-server` with an append-only file (`appendfsync everysec`), as a
  queue Redis must run: without persistence a restart loses every waiting job by
  design, and the dial counts would measure Redis's config, not leadline.
- `PostgresProc`: `initdb` into a temp dir, `pg_ctl start/restart -m fast`, and a
  SIGKILL of the postmaster followed by a start once its orphaned backends are gone.
  PostgreSQL refuses to run as root; then every binary runs as the `postgres` user
  (`runuser`), which must own the data directory.
- `Proc`: any child process (fake realtime, `leadline serve`) with its log file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PG_BIN = Path(os.environ.get("LEADLINE_CHAOS_PG_BIN", "/usr/lib/postgresql/15/bin"))


class ServiceError(RuntimeError):
    """A service the harness needs could not be started; the message says which."""


def free_port(avoid: tuple[int, ...] = (5432, 6379)) -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in avoid:
            return port


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


async def wait_port(port: int, what: str, limit_s: float = 30.0) -> float:
    """Seconds until `port` accepts connections; ServiceError naming `what` past the bound."""
    t0 = time.monotonic()
    while not port_open(port):
        if time.monotonic() - t0 > limit_s:
            raise ServiceError(f"{what} did not listen on {port} within {limit_s} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - t0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def children_of(pid: int) -> list[int]:
    """Direct children of `pid` (from /proc), e.g. a postmaster's backends."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


class Proc:
    """One child process with its log; `kill9` and `stop` act on its pid only."""

    def __init__(self, name: str, argv: list[str], log: Path, *, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        self.env = env
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with open(self.log, "ab") as out:
            out.write(f"\n--- start {self.starts} {time.strftime('%H:%M:%S')} ---\n".encode())
            out.flush()
            self.popen = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd,
                                          stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True)

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-chars:]
        return ""

    def kill9(self) -> None:
        if self.running():
            os.kill(self.pid, signal.SIGKILL)
            assert self.popen is not None
            self.popen.wait(10)

    def stop(self, timeout_s: float = 15.0) -> None:
        if not self.running():
            return
        assert self.popen is not None
        self.popen.terminate()
        try:
            self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)


class RedisProc:
    def __init__(self, root: Path, port: int | None = None) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise ServiceError("redis-server is not installed (apt-get install redis-server)")
        self.port = port or free_port()
        self.dir = root / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = Proc("redis", [
            exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
            "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
            "--protected-mode", "no", "--daemonize", "no",
        ], root / "redis.log")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.proc.start()
        await wait_port(self.port, "redis-server")

    def kill9(self) -> None:
        self.proc.kill9()

    def stop(self) -> None:
        self.proc.stop()


class PostgresProc:
    def __init__(self, root: Path, port: int | None = None) -> None:
        for tool in ("initdb", "pg_ctl", "postgres"):
            if not (PG_BIN / tool).exists():
                raise ServiceError(f"{PG_BIN / tool} is missing (PostgreSQL 15 server binaries; "
                                   "set LEADLINE_CHAOS_PG_BIN to another bin directory)")
        self.port = port or free_port()
        self.root = root
        self.data = root / "pgdata"
        self.sock = root / "pgsock"
        self.log = root / "postgres.log"
        self.user: str | None = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise ServiceError("running as root and no `postgres` user to run "
                                   "PostgreSQL as") from None
            self.user = "postgres"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str, check: bool = True, timeout: float = 60
             ) -> subprocess.CompletedProcess[str]:
        cmd = list(argv)
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise ServiceError(f"{' '.join(argv[:2])} failed: {res.stderr.strip()[-800:]}"
                               f" {self.log_tail()}")
        return res

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-1500:]
        return ""

    def init(self) -> None:
        for d in (self.data, self.sock):
            d.mkdir(parents=True, exist_ok=True)
        self.log.touch()
        if self.user is not None:
            pw = pwd.getpwnam(self.user)
            for p in (self.root, self.data, self.sock, self.log):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--no-sync")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{self.sock}'\nmax_connections = 200\n"
                       # No fsync: a process kill keeps what the kernel has (an OS
                       # crash is not one of the faults). Commits stay synchronous:
                       # with synchronous_commit off a killed postmaster loses
                       # acknowledged commits, a doubled text the harness would blame
                       # on leadline.
                       "fsync = off\nfull_page_writes = off\n"
                       "shared_buffers = 32MB\n")

    async def start(self, limit_s: float = 60.0) -> None:
        """`pg_ctl start`, retried while a killed postmaster's leftovers still block it."""
        t0 = time.monotonic()
        while True:
            res = await asyncio.to_thread(
                self._run, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                "-w", "-t", "30", "start", check=False)
            if res.returncode == 0:
                break
            if time.monotonic() - t0 > limit_s:
                raise ServiceError(f"pg_ctl start failed: {res.stderr.strip()[-500:]} "
                                   f"{self.log_tail()}")
            await asyncio.sleep(0.5)
        await wait_port(self.port, "postgres")

    async def restart_fast(self) -> None:
        await asyncio.to_thread(self._run, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l",
                                str(self.log), "-w", "-t", "60", "-m", "fast", "restart")
        await wait_port(self.port, "postgres")

    def postmaster_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data / "postmaster.pid").read_text().split()[0])
        return None

    async def kill9_postmaster(self, limit_s: float = 30.0) -> None:
        """SIGKILL the postmaster; its backends notice and exit, then the dir is free."""
        pid = self.postmaster_pid()
        if pid is None or not _alive(pid):
            raise ServiceError("no running postmaster to kill")
        backends = children_of(pid)
        os.kill(pid, signal.SIGKILL)
        t0 = time.monotonic()
        while _alive(pid) or any(_alive(b) for b in backends):
            if time.monotonic() - t0 > limit_s:
                # Orphans of the postmaster we started: ours to end, by pid.
                for b in backends:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(b, signal.SIGKILL)
            if time.monotonic() - t0 > limit_s + 10:
                raise ServiceError("postgres backends outlived their postmaster")
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        if self.postmaster_pid() is not None:
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                      "stop", check=False)
