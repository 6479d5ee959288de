"""The Python SDK against a real airlockd (conftest.py): real VMs, real answers."""
import asyncio
import os
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

import airlock
from airlock import AsyncSandbox, Client, Conflict, InvalidArgument, NotFound, Sandbox, SandboxError, Transient, run
from airlock._ops import call, drive
from airlock.errors import Capacity, error_from

from conftest import qemu_under


def test_run_answers_a_result(client):
    result = run("print(6*7)", language="python", timeout=10, client=client)
    assert result.stdout == "42\n"
    assert result.status == "ok" and result.exit_code == 0 and result.ok
    assert result.timing["total_ms"] > 0
    failed = run("import sys; sys.exit(3)", client=client)
    assert failed.exit_code == 3 and not failed.ok, "a program's failure is a result"
    assert run("cat", language="shell", stdin="piped", client=client).stdout == "piped"


def test_images_are_listed_with_their_languages(client):
    images = {image["name"]: image for image in airlock.list_images(client=client)}
    assert images["python-data"]["languages"] == ["python", "shell"]
    assert images["python-data"]["origin"] == "built" and images["python-data"]["digest"] is None
    assert images["go"]["languages"][0] == "go"
    assert [image["name"] for image in asyncio.run(airlock.alist_images(client=client))] == list(images)


def test_errors_are_typed_and_name_what_was_wrong(client):
    with pytest.raises(InvalidArgument) as bad:
        run("1", language="cobol", client=client)
    assert "cobol" in bad.value.message and bad.value.status == 400 and not bad.value.retryable
    with pytest.raises(NotFound):
        Sandbox.connect("sb-" + "0" * 32, client=client)
    # Every status of the API's one table maps to one class of the hierarchy.
    for status, kind in [(400, InvalidArgument), (404, NotFound), (409, Conflict), (429, Capacity),
                         (503, Transient), (507, Capacity)]:
        error = error_from(status, {"error": {"code": "x", "message": "m", "retryable": status in (429, 503)}})
        assert isinstance(error, kind) and isinstance(error, SandboxError)
        assert error.retryable == (status in (429, 503))


def test_a_sandbox_keeps_files_runs_commands_and_code(client):
    with Sandbox.create(language="python", memory_mb=256, ttl=600, client=client) as sb:
        sb.files.write("/home/sandbox/data.csv", b"a,b\n1,2\n")
        seen = []
        lines = sb.commands.run("wc -l data.csv", on_stdout=seen.append)
        assert lines.exit_code == 0 and lines.stdout.strip() == "2 data.csv"
        assert "".join(seen).strip() == "2 data.csv", "streamed as it came"
        assert sb.files.read("/home/sandbox/data.csv") == b"a,b\n1,2\n"
        names = [entry["name"] for entry in sb.files.list("/home/sandbox")]
        assert "data.csv" in names
        assert sb.commands.run(["sh", "-c", "echo $GREETING"], env={"GREETING": "hi"}).stdout == "hi\n"
        assert sb.commands.run("exit 4").exit_code == 4

        handle = sb.commands.run("sleep 60", background=True)
        assert handle.info()["state"] == "running"
        handle.kill()
        assert handle.wait(timeout=30).status in ("error", "killed")
        typed = sb.commands.run("read a; read b; echo $b $a", background=True, stdin_open=True)
        assert typed.send_stdin("first\n")["bytes"] == 6
        assert typed.send_stdin("second\n", close=True)["closed"] is True
        assert typed.wait(timeout=30).stdout == "second first\n", "stdin typed into a running command"

        ex = sb.run_code("1 + 1")
        assert ex.text == "2" and ex.error is None and ex.execution_count == 1
        assert sb.run_code("x = 5").text is None
        assert sb.run_code("x * 2").text == "10", "variables persist between cells"
        failed = sb.run_code("1 / 0")
        assert failed.status == "error" and failed.error.name == "ZeroDivisionError"
        assert any("<cell-" in line for line in failed.error.traceback)

        assert sb.id in [entry["id"] for entry in Sandbox.list(client=client)]
        idle_since = sb.info()["idle_since_ms"]
        time.sleep(0.05)
        sb.touch()
        assert sb.info()["idle_since_ms"] > idle_since, "touch starts its idle timeout again"
        server = sb.commands.run(["python3", "-m", "http.server", "8000", "--bind", "127.0.0.1"], background=True)
        forward = sb.forward_port(8000)
        assert forward["host"] == "127.0.0.1" and forward["port"] == 8000
        assert [entry["port"] for entry in sb.ports()] == [8000]
        for _ in range(200):
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{forward['host_port']}/", timeout=5).read()
                break
            except OSError:
                time.sleep(0.1)
        assert b"data.csv" in page, "the forwarded port reaches the sandbox's server (a directory listing)"
        sb.close_port(8000)
        assert sb.ports() == []
        server.kill()

        sb.files.remove("/home/sandbox/data.csv")
        with pytest.raises(NotFound):
            sb.files.read("/home/sandbox/data.csv")
        identity = sb.id
    with pytest.raises(NotFound):
        Sandbox.connect(identity, client=client).info()


def test_snapshots_restores_forks_and_pauses(client):
    sb = Sandbox.create(language="python", client=client)
    try:
        sb.run_code("kept = 'before'")
        snap = sb.snapshot("sdk-clean", labels={"by": "sdk"})
        assert snap.name == "sdk-clean" and snap.id.startswith("snap-")
        sb.run_code("kept = 'after'")
        restored = Sandbox.restore("sdk-clean", client=client)
        try:
            assert restored.run_code("kept").text == "'before'"
        finally:
            restored.kill()
        copies = sb.fork(2)
        try:
            assert len(copies) == 2 and all(isinstance(copy, Sandbox) for copy in copies)
            assert {copy.run_code("kept").text for copy in copies} == {"'after'"}
        finally:
            for copy in copies:
                if isinstance(copy, Sandbox):
                    copy.kill()
        sb.pause()
        with pytest.raises(Conflict) as paused:
            sb.commands.run("true")
        assert paused.value.state == "paused"
        sb.resume()
        assert sb.commands.run("true").exit_code == 0
        assert "sdk-clean" in [entry["name"] for entry in airlock.list_snapshots(client=client)]
    finally:
        sb.kill()
        assert airlock.delete_snapshot("sdk-clean", client=client)["name"] == "sdk-clean"
    with pytest.raises(NotFound):
        airlock.delete_snapshot("sdk-clean", client=client)


def test_threads_share_one_client(client):
    results = [None] * 4
    def one(i):
        results[i] = run(f"print({i} * {i})", client=client).stdout
    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["0\n", "1\n", "4\n", "9\n"]


def test_asyncio_front_end(client):
    async def main():
        async with await AsyncSandbox.create(language="python", client=client) as sb:
            assert (await sb.commands.run("true")).exit_code == 0
            out = []
            streamed = await sb.commands.run("echo one; echo two", on_stdout=out.append)
            assert streamed.stdout == "one\ntwo\n" and "".join(out) == "one\ntwo\n"
            await sb.files.write("/home/sandbox/f", "text")
            assert await sb.files.read("/home/sandbox/f") == b"text"
            cells = await asyncio.gather(*(airlock.arun(f"print({i})", client=client) for i in range(3)))
            assert [cell.stdout for cell in cells] == ["0\n", "1\n", "2\n"]
            assert (await sb.run_code("21 * 2")).text == "42"
            assert "f" in [entry["name"] for entry in await sb.files.list()]
            await sb.files.remove("/home/sandbox/f")
            with pytest.raises(NotFound):
                await sb.files.read("/home/sandbox/f")

            handle = await sb.commands.run("read line; echo got $line", background=True, stdin_open=True)
            assert isinstance(handle, airlock.AsyncCommandHandle)
            assert (await handle.info())["state"] == "running"
            await handle.send_stdin("it\n", close=True)
            assert (await handle.wait(timeout=30)).stdout == "got it\n"
            sleeper = await sb.commands.run("sleep 60", background=True)
            await sleeper.kill("TERM")
            assert (await sleeper.wait(timeout=30)).status in ("error", "killed")

            assert sb.id in [entry["id"] for entry in await AsyncSandbox.list(client=client)]
            await sb.touch()
            forward = await sb.forward_port(9000)
            assert [entry["host_port"] for entry in await sb.ports()] == [forward["host_port"]]
            await sb.close_port(9000)
            same = await AsyncSandbox.connect(sb.id, client=client)
            assert (await same.info())["id"] == sb.id
            await sb.run_code("mark = 'snapshotted'")
            snap = await sb.snapshot("sdk-async", labels={"by": "asyncio"})
            try:
                await sb.run_code("mark = 'later'")
                restored = await AsyncSandbox.restore(snap.id, client=client)
                async with restored:
                    assert (await restored.run_code("mark")).text == "'snapshotted'"
                assert snap.id in [entry["id"] for entry in await airlock.alist_snapshots(client=client)]
            finally:
                await airlock.adelete_snapshot(snap.id, client=client)
            copies = await sb.fork(2)
            try:
                assert all(isinstance(copy, AsyncSandbox) for copy in copies)
                texts = await asyncio.gather(*(copy.run_code("mark") for copy in copies))
                assert {text.text for text in texts} == {"'later'"}
            finally:
                await asyncio.gather(*(copy.kill() for copy in copies if isinstance(copy, AsyncSandbox)))
            await sb.pause()
            with pytest.raises(Conflict) as paused:
                await sb.commands.run("true")
            assert paused.value.state == "paused"
            await sb.resume()
            assert (await sb.commands.run("true")).exit_code == 0
        with pytest.raises(NotFound):
            await sb.info()
    asyncio.run(main())


def test_no_daemon_and_no_autostart_is_a_clear_error(tmp_path):
    missing = str(tmp_path / "none.sock")
    with pytest.raises(Transient) as error:
        Client(socket_path=missing, autostart=False)
    assert "does not answer" in error.value.message and error.value.retryable


def _no_daemon_answers(tmp_path):
    """The environment of a program that finds no airlockd and may start one."""
    env = dict(os.environ, AIRLOCK_SOCKET=str(tmp_path / "nothing.sock"))
    env.pop("AIRLOCK_NO_AUTOSTART", None)
    return env


def test_the_sdk_starts_a_private_daemon_and_leaves_nothing_behind(tmp_path):
    env = _no_daemon_answers(tmp_path)
    program = ("from airlock import run\n"
               "import airlock._client as c\n"
               "print(run('print(6*7)').stdout, end='')\n"
               "print(c.default_client().daemon.dir)\n")
    done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    answer, daemon_dir = done.stdout.splitlines()
    assert answer == "42"
    assert not os.path.exists(daemon_dir), "its directory was removed at exit"
    assert not qemu_under(daemon_dir + "/"), "its VMs are gone"


def _gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_a_killed_program_s_private_daemon_stops_and_its_directory_is_swept(tmp_path):
    env = _no_daemon_answers(tmp_path)
    program = ("import sys, time\n"
               "from airlock import run\n"
               "import airlock._client as c\n"
               "assert run('print(1)').stdout == '1\\n'\n"
               "daemon = c.default_client().daemon\n"
               "print(daemon.dir, daemon.process.pid, flush=True)\n"
               "time.sleep(600)\n")
    child = subprocess.Popen([sys.executable, "-c", program], env=env, stdout=subprocess.PIPE, text=True)
    try:
        daemon_dir, pid = child.stdout.readline().split()
    finally:
        child.kill()  # no atexit, no stop(): only the pipe tells airlockd
        child.wait()
        child.stdout.close()
    deadline = time.monotonic() + 90
    while not _gone(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _gone(int(pid)), "airlockd read end of file on stdin and stopped"
    assert not qemu_under(daemon_dir + "/"), "and took its VMs with it"
    assert os.path.isdir(daemon_dir), "nobody was left to remove its directory"
    assert daemon_dir in airlock._client.sweep_abandoned(), "the next private daemon's sweep removes it"
    assert not os.path.exists(daemon_dir)
