#!/usr/bin/python3
"""SDK benchmark (not a test): a private airlockd with warm pools, and in the
same process the SDK's calls against the same requests sent raw (http.client
over the Unix socket): what the SDK adds, a @sandboxed call against the same
function called locally and against run(), and a sandbox's life through it.

    PYTHONPATH=sdk/python bench/sdk.py [rounds]     (default 100; build/bin/airlockd)
"""
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sdk", "python"))
from airlock import Client, Sandbox, run, sandboxed  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from sdk_funcs import word_count  # noqa: E402


class Unix(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("airlockd", timeout=60)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def raw(sock, method, path, document):
    connection = Unix(sock)
    connection.request(method, path, body=json.dumps(document), headers={"Content-Type": "application/json"})
    answer = json.loads(connection.getresponse().read())
    connection.close()
    return answer


def timed(rounds, step):
    took = []
    for _ in range(rounds):
        start = time.perf_counter()
        step()
        took.append((time.perf_counter() - start) * 1000)
    took.sort()
    return statistics.median(took), took[min(len(took) - 1, int(len(took) * 0.99))]


def pools_full(sock):
    """Waits (untimed) until every pool is back to its target, so that no step
    pays for the refill the one before it caused."""
    for _ in range(200):
        connection = Unix(sock)
        connection.request("GET", "/v1/pools")
        pools = json.loads(connection.getresponse().read())["pools"]
        connection.close()
        if all(pool["ready"] >= pool["target"] for pool in pools):
            return
        time.sleep(0.02)


def timed_pair(rounds, *steps, settle=None):
    """The steps, alternated, so that all see the same machine (noise)."""
    took = [[] for _ in steps]
    for _ in range(rounds):
        for index, step in enumerate(steps):
            if settle:
                settle()
            start = time.perf_counter()
            step()
            took[index].append((time.perf_counter() - start) * 1000)
    return [(statistics.median(sorted(t)), sorted(t)[min(len(t) - 1, int(len(t) * 0.99))]) for t in took]


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    directory = tempfile.mkdtemp(prefix="airlock-bench-sdk-")
    sock = os.path.join(directory, "airlockd.sock")
    binary = os.environ.get("AIRLOCK_DAEMON", os.path.join(os.path.dirname(__file__), "..", "build", "bin", "airlockd"))
    daemon = subprocess.Popen([binary, "--socket", sock, "--pool-size", "2"], env=dict(os.environ, AIRLOCK_RUNTIME_DIR=directory),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            if os.path.exists(sock):
                break
            time.sleep(0.1)
        client = Client(socket_path=sock, autostart=False)
        time.sleep(5)  # the pools fill
        request = {"language": "python", "code": "print(1)"}
        for _ in range(3):
            run("print(1)", client=client)
        settle = lambda: pools_full(sock)  # noqa: E731
        raw_run, sdk_run = timed_pair(rounds, lambda: raw(sock, "POST", "/v1/run", request),
                                      lambda: run("print(1)", client=client), settle=settle)
        counted = sandboxed(word_count, client=client, pool_size=2)
        text = "the cat and the hat " * 20
        assert counted(text) == word_count(text)
        pools_full(sock)  # its profile's pool, if it has one of its own
        local, decorated, plain = timed_pair(rounds, lambda: word_count(text), lambda: counted(text),
                                             lambda: run("print(1)", client=client), settle=settle)
        sb = Sandbox.create(client=client)
        execs = f"/v1/sandboxes/{sb.id}/execs"
        raw_exec, sdk_exec = timed_pair(rounds, lambda: raw(sock, "POST", execs, {"argv": ["true"]}),
                                        lambda: sb.commands.run(["true"]))
        sb.run_code("1+1")
        raw_cell, cell = timed_pair(rounds, lambda: raw(sock, "POST", f"/v1/sandboxes/{sb.id}/contexts/default/run",
                                                        {"code": "1+1"}),
                                    lambda: sb.run_code("1+1"))
        sb.kill()

        def life():
            with Sandbox.create(client=client) as made:
                made.commands.run(["true"])
        lives = timed(max(3, rounds // 10), life)
        print(f"SDK against raw HTTP in the same process, {rounds} rounds (TCG unless KVM works here)")
        print(f"  run('print(1)'), pool of 2   raw p50 {raw_run[0]:7.2f} ms   SDK p50 {sdk_run[0]:7.2f} ms "
              f"p99 {sdk_run[1]:7.2f} ms   (+{sdk_run[0] - raw_run[0]:.2f} ms)")
        print(f"  commands.run(['true'])       raw p50 {raw_exec[0]:7.2f} ms   SDK p50 {sdk_exec[0]:7.2f} ms "
              f"p99 {sdk_exec[1]:7.2f} ms   (+{sdk_exec[0] - raw_exec[0]:.2f} ms)")
        print(f"  run_code('1+1')              raw p50 {raw_cell[0]:7.2f} ms   SDK p50 {cell[0]:7.2f} ms "
              f"p99 {cell[1]:7.2f} ms   (+{cell[0] - raw_cell[0]:.2f} ms)")
        print(f"  @sandboxed word_count(text)  local p50 {local[0]:7.3f} ms   call p50 {decorated[0]:7.2f} ms "
              f"p99 {decorated[1]:7.2f} ms   run('print(1)') p50 {plain[0]:7.2f} ms "
              f"(x{decorated[0] / plain[0]:.2f} of run)")
        print(f"  Sandbox.create + commands.run + close            p50 {lives[0]:7.1f} ms p99 {lives[1]:7.1f} ms")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=120)
        subprocess.run(["rm", "-rf", directory])


if __name__ == "__main__":
    main()
