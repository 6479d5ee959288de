"""A private airlockd for the SDK's tests (AIRLOCK_DAEMON names the binary),
stopped at the end with nothing left behind."""
import os
import signal
import subprocess
import tempfile
import time

import pytest

from airlock import Client
from airlock._http import Endpoint, Request, SyncTransport


def qemu_under(path):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                text = cmdline.read().decode("utf-8", "replace")
        except OSError:
            continue
        if "qemu-system" in text and path in text:
            found.append(int(pid))
    return found


MOUNT_ROOT = []


@pytest.fixture(scope="session")
def daemon():
    binary = os.environ["AIRLOCK_DAEMON"]
    directory = tempfile.mkdtemp(prefix="airlock-sdk-test-")
    socket_path = os.path.join(directory, "airlockd.sock")
    # Host files a @sandboxed function may read (fs="ro:..."): others must be able to read them.
    MOUNT_ROOT.append(tempfile.mkdtemp(prefix="airlock-sdk-mounts-"))
    os.chmod(MOUNT_ROOT[0], 0o755)
    log = open(os.path.join(directory, "airlockd.log"), "wb")
    process = subprocess.Popen([binary, "--socket", socket_path, "--pool-size", "1", "--snapshot-dir",
                                os.path.join(directory, "snapshots"), "--mount-root", MOUNT_ROOT[0]],
                               env=dict(os.environ, AIRLOCK_RUNTIME_DIR=directory), stdout=log,
                               stderr=subprocess.STDOUT)
    transport = SyncTransport(Endpoint(socket_path=socket_path), timeout=5)
    for _ in range(600):
        try:
            if transport.send(Request("GET", "/v1/health")).status == 200:
                break
        except Exception:
            time.sleep(0.1)
    yield socket_path
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 0, "airlockd did not drain and exit cleanly"
    log.close()
    assert not qemu_under(directory + "/"), "QEMU left running"
    subprocess.run(["rm", "-rf", directory, MOUNT_ROOT[0]], check=True)


@pytest.fixture
def mount_root(daemon):
    return MOUNT_ROOT[0]


@pytest.fixture
def default_client_is_the_daemon(daemon, monkeypatch):
    """What @sandboxed functions use when given no client: the test's daemon."""
    import airlock._client
    monkeypatch.setenv("AIRLOCK_SOCKET", daemon)
    monkeypatch.setenv("AIRLOCK_NO_AUTOSTART", "1")
    monkeypatch.setattr(airlock._client, "_default", None)
    yield daemon


@pytest.fixture
def client(daemon):
    return Client(socket_path=daemon, autostart=False)
