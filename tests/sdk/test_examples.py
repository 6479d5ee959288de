"""examples/ run as a user runs them, against the test's airlockd."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def run_example(name, *args, daemon):
    environment = dict(os.environ, AIRLOCK_SOCKET=daemon, AIRLOCK_NO_AUTOSTART="1",
                       PYTHONPATH=os.path.join(ROOT, "sdk", "python"))
    done = subprocess.run([sys.executable, os.path.join(ROOT, "examples", name), *args], capture_output=True,
                          text=True, env=environment, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_agent_loop_feeds_the_traceback_back_and_finishes(daemon):
    out = run_example("agent_loop.py", daemon=daemon).splitlines()
    assert out[0] == "step 1: the code failed with NameError; feeding the traceback back", out
    assert out[1] == "step 2: the code returned [('the', 9), ('and', 6), ('cat', 3)]", out
    assert out[-1] == "answer: [('the', 9), ('and', 6), ('cat', 3)]", out


def test_plugin_host_survives_its_plugins(daemon):
    text = run_example("plugin_host.py", daemon=daemon)
    assert "word_count 'The cat sat'                {'words': 3}" in text, text
    assert "'upper_ratio': 0.6}" in text, text
    assert "'host_home_visible': False" in text and "'network': 'unreachable" in text, text
    assert "buggy      'THE DOG BARKED at the cat'  failed: KeyError: 'dog'" in text, text
    assert "buggy      'The cat sat'                timed out (its VM was destroyed)" in text, text


@pytest.fixture
def uploads(mount_root, tmp_path):
    directory = os.path.join(mount_root, f"uploads-{os.getpid()}")
    os.mkdir(directory, 0o755)
    yield directory
    subprocess.run(["rm", "-rf", directory], check=True)


def test_parse_untrusted_reads_but_cannot_change_the_uploads(daemon, uploads):
    out = run_example("parse_untrusted.py", uploads, daemon=daemon)
    lines = dict(line.split(None, 1) for line in out.splitlines())
    assert lines["order.json"] == "{'file': 'order.json', 'kind': 'json', 'keys': ['customer', 'id', 'items']}"
    assert lines["table.csv"] == "{'file': 'table.csv', 'kind': 'csv', 'rows': 2, 'columns': ['a', 'b', 'c']}"
    assert lines["broken.json"].startswith("RemoteError: json.decoder.JSONDecodeError: Expecting"), lines
    assert lines["huge.bomb"].startswith("MemoryError"), lines
    assert lines["notes.txt"] == "{'file': 'notes.txt', 'kind': 'unknown', 'write_refused': 'Read-only file system'}"
    with open(os.path.join(uploads, "notes.txt"), "rb") as notes:
        assert notes.read() == b"plain text"
