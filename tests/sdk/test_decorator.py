"""@sandboxed against a real airlockd: each call in a VM of its own."""
import asyncio
import concurrent.futures
import os
import subprocess
import sys
import textwrap
import time

import pytest

import sandboxed_funcs as funcs
from airlock import RemoteError, RemoteTraceback, Timeout, sandboxed
from airlock._http import Request

pytestmark = pytest.mark.usefixtures("default_client_is_the_daemon")


def test_a_call_runs_in_a_vm_and_returns_json(capsys):
    answer = funcs.describe("abc", scale=2)
    assert answer["length"] == 6 and answer["module"] == "sandboxed_funcs"
    assert answer["uid"] != os.getuid() and answer["hostname"] != os.uname().nodename
    # What JSON changes: tuples become lists, dict keys strings.
    assert answer["pair"] == [1, 2] and answer["keys"] == {"1": "one"}
    assert "printed in the VM" in capsys.readouterr().out, "the function's prints reach the caller"
    assert funcs.describe.local("abc")["pair"] == (1, 2), ".local runs it here"
    assert funcs.describe.__name__ == "describe" and "dict" in str(funcs.describe.__annotations__)
    assert not funcs.RAN_AS_MAIN


def test_only_module_level_functions_are_taken():
    def nested(x):
        return x
    captured = 3

    def closure():
        return captured

    class Plugin:
        def method(self):
            return 1
    for target, why in [(lambda x: x, "lambda"), (nested, "inside another function"),
                        (closure, "inside another function"), (Plugin.method, "a method"),
                        (len, "not builtin_function_or_method")]:
        with pytest.raises(TypeError) as refused:
            sandboxed(target)
        assert why in str(refused.value), str(refused.value)
    with pytest.raises(ValueError, match="packages= needs package layers"):
        sandboxed(packages=["six==1.16.0"])
    with pytest.raises(ValueError, match="read-only"):
        sandboxed(fs="rw:/tmp")
    with pytest.raises(ValueError, match="serializer"):
        sandboxed(serializer="marshal")


def test_a_method_is_refused_when_decorated():
    with pytest.raises(TypeError, match="method"):
        class Host:
            @sandboxed
            def handle(self, data):
                return data


def test_exceptions_are_raised_again_with_the_vms_traceback():
    with pytest.raises(ValueError, match="bad value 'x'") as builtin:
        funcs.fail_builtin("x")
    cause = builtin.value.__cause__
    assert isinstance(cause, RemoteTraceback) and "in fail_builtin" in cause.traceback
    assert 'raise ValueError(f"bad value {value!r}")' in cause.traceback, "the VM's traceback shows the source line"
    assert "_guest_call" not in cause.traceback and "<airlock call>" not in cause.traceback, \
        "our own frames are not the caller's"
    with pytest.raises(RemoteError) as custom:
        funcs.fail_custom("y")
    assert custom.value.type_name == "sandboxed_funcs.ParseFailure" and custom.value.message == "cannot parse y"
    assert "fail_custom" in custom.value.traceback
    with pytest.raises(ModuleNotFoundError, match="module_the_image_lacks"):
        funcs.needs_missing_module()
    with pytest.raises(TypeError, match="JSON cannot carry"):
        funcs.returns_a_set()
    with pytest.raises(TypeError, match="must be JSON"):
        funcs.parse_int({1, 2})
    with pytest.raises(RemoteError) as exited:
        funcs.exits_early()
    assert exited.value.type_name == "SystemExit" and "exit code 7" in exited.value.message
    with pytest.raises(Timeout, match="timeout of 2 s"):
        funcs.spin_forever()


def test_a_vm_of_another_bytecode_version_compiles_the_shipped_source(monkeypatch):
    """The host ships bytecode with the source; a guest whose Python has another
    magic number must compile the text instead, and say the same."""
    from airlock import _shipping, decorator
    monkeypatch.setattr(_shipping, "MAGIC", "00000000")
    monkeypatch.setattr(decorator, "_RUNNER", {**decorator._RUNNER, "magic": "00000000"})
    fresh = sandboxed(funcs.parse_int.function)
    assert fresh("41") == 41
    with pytest.raises(ValueError) as failed:
        sandboxed(funcs.fail_builtin.function)("z")
    assert 'raise ValueError(f"bad value {value!r}")' in failed.value.__cause__.traceback


def test_map_keeps_order_and_can_return_exceptions():
    results = funcs.parse_int.map(["1", "x", "3", "4"], return_exceptions=True)
    assert results[0] == 1 and results[2:] == [3, 4]
    assert isinstance(results[1], ValueError) and "invalid literal" in str(results[1])
    with pytest.raises(ValueError):
        funcs.parse_int.map(["1", "x"])
    assert funcs.parse_int.map([]) == []


def test_spawn_gets_and_cancels():
    quick = funcs.sleep_for.spawn(0.05)
    slow = funcs.sleep_for.spawn(120)
    assert quick.get(timeout=60) == "woke" and quick.done()
    assert not quick.cancel(), "a finished call cannot be cancelled"
    with pytest.raises(TimeoutError):
        slow.get(timeout=0.01)
    started = time.monotonic()
    assert slow.cancel()
    assert time.monotonic() - started < 30, "cancel hangs up; the daemon stops the run"
    with pytest.raises(concurrent.futures.CancelledError):
        slow.get()


def test_aio_and_threads_at_once():
    async def both():
        return await asyncio.gather(funcs.parse_int.aio("5"), funcs.coroutine.aio(1))
    assert asyncio.run(both()) == [5, 2]
    assert funcs.coroutine(41) == 42, "an async def runs to completion in the VM"
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        assert list(pool.map(funcs.parse_int, ["7", "8", "9"])) == [7, 8, 9]


def test_modules_and_pickle():
    assert funcs.use_package(2) == 106, "modules=[package] ships its tree"
    assert funcs.pickled({1, 2}) == frozenset({2, 4})


def test_each_profile_gets_its_own_pool(client):
    memory = funcs.own_profile()
    assert 200 < memory <= 320
    pools = client.sync.send(Request("GET", "/v1/pools")).json()["pools"]
    assert any(pool["network"] == "allow:example.com" and pool["memory_mb"] == 320 for pool in pools), pools


def test_another_image(client):
    rows = [{"k": "a", "v": 1}, {"k": "b", "v": 2}, {"k": "a", "v": 3}]
    assert funcs.column_sums(rows) == {"a": 4, "b": 2}
    pools = client.sync.send(Request("GET", "/v1/pools")).json()["pools"]
    assert any(pool["image"] == "python-data" and pool["language"] == "python" for pool in pools), pools


def test_a_read_only_mount(mount_root):
    with open(os.path.join(mount_root, "input.txt"), "w") as data:
        data.write("untrusted bytes")
    os.chmod(os.path.join(mount_root, "input.txt"), 0o644)
    reader = sandboxed(fs=f"ro:{mount_root}:/data", timeout=20)(funcs.read_mounted.function)
    assert reader("/data/input.txt") == "untrusted bytes"
    with pytest.raises(FileNotFoundError):
        reader("/data/absent")


def test_a_function_of_the_main_script(tmp_path, default_client_is_the_daemon):
    script = tmp_path / "plugin_host.py"
    script.write_text(textwrap.dedent("""
        from airlock import sandboxed

        @sandboxed(timeout=20)
        def double(x):
            return [x * 2, __name__]

        if __name__ == "__main__":
            print(double(21))
    """))
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=environment, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[42, '__mp_main__']", "the main block ran here only"
