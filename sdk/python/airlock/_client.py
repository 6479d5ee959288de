"""Finding airlockd, or starting a private one for this process."""
from __future__ import annotations

import atexit
import fcntl
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Optional

from ._http import AsyncTransport, Endpoint, Request, SyncTransport
from .errors import SandboxError, Transient


def find_airlockd() -> Optional[str]:
    """$AIRLOCK_DAEMON, else airlockd on PATH, else beside this environment's python."""
    explicit = os.environ.get("AIRLOCK_DAEMON")
    if explicit:
        return explicit
    found = shutil.which("airlockd")
    if found:
        return found
    beside = os.path.join(sys.prefix, "bin", "airlockd")
    return beside if os.access(beside, os.X_OK) else None


_PREFIX = "airlock-sdk-"


def sweep_abandoned() -> list[str]:
    """Removes the directories of private daemons whose process and daemon are
    both gone (a process killed before it could stop its daemon: the daemon
    drained on its own, --exit-with-stdin, but nobody removed the directory).
    Each live one holds an flock on its `lock` file, shared with its daemon."""
    removed = []
    for directory in glob.glob(os.path.join(tempfile.gettempdir(), _PREFIX + "*")):
        try:
            if os.lstat(directory).st_uid != os.getuid():
                continue
            lock = os.open(os.path.join(directory, "lock"), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue  # not ours, or still being made (the lock file comes already locked)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # alive
        finally:
            os.close(lock)
        shutil.rmtree(directory, ignore_errors=True)
        removed.append(directory)
    return removed


class PrivateDaemon:
    """An airlockd of this process alone, in a directory of its own; stopped
    (and its directory removed) at exit, or by stop()."""

    def __init__(self, binary: str, arguments: Optional[list[str]] = None) -> None:
        sweep_abandoned()
        self.dir = tempfile.mkdtemp(prefix=_PREFIX)
        # Locked before it has its name, so that a sweep never sees it unlocked;
        # airlockd inherits it, so the lock lasts as long as either of us.
        making = os.path.join(self.dir, "lock.new")
        self._lock = os.open(making, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        os.rename(making, os.path.join(self.dir, "lock"))
        self.socket_path = os.path.join(self.dir, "airlockd.sock")
        self._log = open(os.path.join(self.dir, "airlockd.log"), "wb")
        env = dict(os.environ, AIRLOCK_RUNTIME_DIR=self.dir)
        # A session of its own: a Ctrl-C of this program's terminal is not airlockd's.
        # Its stdin is a pipe only this process holds: should this process die
        # without stop(), even by SIGKILL, airlockd reads end of file and drains.
        self.process = subprocess.Popen([binary, "--socket", self.socket_path, "--exit-with-stdin",
                                         *(arguments or [])], env=env,
                                        stdin=subprocess.PIPE, stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True, pass_fds=(self._lock,))
        atexit.register(self.stop)
        transport = SyncTransport(Endpoint(socket_path=self.socket_path), timeout=5)
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                said = self.log_tail()
                self.stop()
                raise SandboxError(f"airlockd ({binary}) exited with {self.process.returncode} as it started: {said}")
            try:
                if transport.send(Request("GET", "/v1/health")).status == 200:
                    return
            except SandboxError:
                pass
            if time.monotonic() > deadline:
                said = self.log_tail()
                self.stop()
                raise Transient(f"airlockd ({binary}) did not answer within 60 s: {said}")
            time.sleep(0.05)

    def log_tail(self) -> str:
        try:
            with open(os.path.join(self.dir, "airlockd.log"), "rb") as log:
                return log.read()[-800:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # it drains and destroys its VMs
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdin:
            self.process.stdin.close()
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1


class Client:
    """How this process reaches airlockd: the Unix socket (AIRLOCK_SOCKET, or
    the default the CLI uses), or AIRLOCK_URL + AIRLOCK_TOKEN. When nothing
    answers, a private airlockd is started, unless `autostart` is False or
    AIRLOCK_NO_AUTOSTART=1."""

    def __init__(self, socket_path: Optional[str] = None, url: Optional[str] = None, token: Optional[str] = None,
                 autostart: Optional[bool] = None, timeout: float = 300.0) -> None:
        self.endpoint = Endpoint.from_environment(socket_path, url, token)
        self.timeout = timeout
        if autostart is None:
            autostart = os.environ.get("AIRLOCK_NO_AUTOSTART", "") not in ("1", "true", "yes")
        self.daemon: Optional[PrivateDaemon] = None
        if not self._answers():
            if not autostart or self.endpoint.host:
                raise Transient(f"airlockd does not answer on {self.endpoint.describe()} "
                                "(start it with build/bin/airlockd, or allow the SDK to start one)")
            binary = find_airlockd()
            if not binary:
                raise Transient(f"airlockd does not answer on {self.endpoint.describe()}, and no airlockd "
                                "binary was found to start (set AIRLOCK_DAEMON, or put it on PATH)")
            self.daemon = PrivateDaemon(binary)
            self.endpoint = Endpoint(socket_path=self.daemon.socket_path)
        self.sync = SyncTransport(self.endpoint, timeout)
        self.aio = AsyncTransport(self.endpoint, timeout)

    def _answers(self) -> bool:
        try:
            return SyncTransport(self.endpoint, timeout=5).send(Request("GET", "/v1/health")).status == 200
        except SandboxError:
            return False

    def close(self) -> None:
        if self.daemon:
            self.daemon.stop()
            self.daemon = None


_default: Optional[Client] = None
_default_lock = threading.Lock()


def default_client() -> Client:
    global _default
    with _default_lock:
        if _default is None:
            _default = Client()
        return _default
