#!/usr/bin/python3
"""Checks real airlockd responses against the contract in docs/api.yaml.

Starts a private airlockd, sends one request of every kind (successes and
errors) over its Unix socket, and validates each response body against the
schema the spec names for that endpoint and status. Exits non-zero naming
the first response that breaks the contract; prints 'N passed, 0 failed'.

Usage: validate_api.py <airlockd binary> <docs/api.yaml>
"""
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time

import jsonschema
import yaml


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("airlockd", timeout=120)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def call(sock, method, path, body=None, accept="application/json"):
    connection = UnixConnection(sock)
    headers = {"Accept": accept}
    data = None if body is None else (body if isinstance(body, (str, bytes)) else json.dumps(body))
    connection.request(method, path, body=data, headers=headers)
    response = connection.getresponse()
    payload = response.read().decode()
    connection.close()
    return response.status, response.getheader("Content-Type", ""), payload


def get_bytes(sock, path):
    """A GET whose answer is raw bytes (a file, an archive): status, Content-Type, body."""
    connection = UnixConnection(sock)
    connection.request("GET", path)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, response.getheader("Content-Type", ""), data


def main():
    daemon_binary, spec_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as spec_file:
        spec = yaml.safe_load(spec_file)
    components = spec["components"]

    def schema_of(path, method, status, content_type):
        operation = spec["paths"][path][method]
        response = operation["responses"][str(status)]
        if "$ref" in response:
            response = components["responses"][response["$ref"].split("/")[-1]]
        schema = response["content"][content_type]["schema"]
        # Resolve '#/components/...' references against the whole spec.
        return {**schema, "components": components}

    passed = []

    def check(label, path, method, status, content_type, document):
        schema = schema_of(path, method, status, content_type)
        try:
            jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)
        except jsonschema.ValidationError as error:
            sys.exit(f"FAIL {label}: response does not match docs/api.yaml: {error.message}\n{document}")
        passed.append(label)

    with tempfile.TemporaryDirectory(prefix="airlock-api-") as runtime:
        sock = os.path.join(runtime, "airlockd.sock")
        env = dict(os.environ, AIRLOCK_RUNTIME_DIR=runtime)
        daemon = subprocess.Popen([daemon_binary, "--socket", sock, "--pool-size", "1",
                                   "--snapshot-dir", os.path.join(runtime, "snapshots")], env=env)
        try:
            for _ in range(600):
                try:
                    if call(sock, "GET", "/v1/health")[0] == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.05)

            status, _, body = call(sock, "GET", "/v1/health")
            check("GET /v1/health", "/v1/health", "get", status, "application/json", json.loads(body))

            status, _, body = call(sock, "POST", "/v1/run", {"language": "python", "code": "print('ok')"})
            assert status == 200, body
            check("POST /v1/run json", "/v1/run", "post", 200, "application/json", json.loads(body))

            status, _, body = call(sock, "POST", "/v1/run",
                                   {"language": "python", "code": "import sys; sys.stdout.buffer.write(b'\\xff'); print('x', file=sys.stderr)",
                                    "stdin": "in", "env": {"A": "b"}, "timeout_s": 5, "memory_mb": 256,
                                    "stdout_limit": 100, "stderr_limit": 100},
                                   accept="application/x-ndjson")
            assert status == 200, body
            lines = [json.loads(line) for line in body.splitlines()]
            for number, event in enumerate(lines):
                check(f"POST /v1/run ndjson event {number}", "/v1/run", "post", 200, "application/x-ndjson", event)
            assert lines[-1]["type"] == "result"

            status, _, body = call(sock, "GET", "/v1/pools")
            check("GET /v1/pools", "/v1/pools", "get", status, "application/json", json.loads(body))
            status, _, body = call(sock, "GET", "/v1/images")
            check("GET /v1/images", "/v1/images", "get", status, "application/json", json.loads(body))
            images = {image["name"]: image for image in json.loads(body)["images"]}
            if images.get("python-data", {}).get("languages") != ["python", "shell"]:
                sys.exit(f"FAIL GET /v1/images: python-data is not listed with python and shell: {images}")

            status, _, body = call(sock, "PUT", "/v1/pools/shell-256m", {"target": 1})
            check("PUT /v1/pools/{name}", "/v1/pools/{name}", "put", status, "application/json", json.loads(body))

            pool = {"language": "shell", "network": "allow:example.test", "target": 0}
            status, _, body = call(sock, "POST", "/v1/pools", pool)
            assert status == 201, body
            check("POST /v1/pools", "/v1/pools", "post", status, "application/json", json.loads(body))
            status, _, body = call(sock, "POST", "/v1/pools", pool)
            assert status == 409, body
            check("POST /v1/pools again", "/v1/pools", "post", status, "application/json", json.loads(body))
            status, _, body = call(sock, "DELETE", "/v1/pools/" + json.loads(body)["error"]["message"].split("'")[1])
            assert status == 200, body
            check("DELETE /v1/pools/{name}", "/v1/pools/{name}", "delete", status, "application/json", json.loads(body))
            status, _, body = call(sock, "DELETE", "/v1/pools/none")
            assert status == 404, body
            check("DELETE /v1/pools unknown", "/v1/pools/{name}", "delete", status, "application/json", json.loads(body))
            status, _, body = call(sock, "POST", "/v1/pools", {"language": "shell", "code": "x", "target": 1})
            assert status == 400, body
            check("POST /v1/pools with code", "/v1/pools", "post", status, "application/json", json.loads(body))

            for label, request, expected in [
                ("unknown field", {"language": "python", "code": "x", "nope": 1}, 400),
                ("bad timeout", {"language": "python", "code": "x", "timeout_s": 999}, 400),
                ("not JSON", "{", 400),
            ]:
                status, _, body = call(sock, "POST", "/v1/run", request)
                assert status == expected, (label, status, body)
                check(f"POST /v1/run {label}", "/v1/run", "post", status, "application/json", json.loads(body))
            status, _, body = call(sock, "PUT", "/v1/pools/none", {"target": 1})
            assert status == 404, body
            check("PUT /v1/pools unknown", "/v1/pools/{name}", "put", status, "application/json", json.loads(body))

            status, _, body = call(sock, "POST", "/v1/sandboxes", {"language": "shell", "ttl_s": 600})
            assert status == 201, body
            check("POST /v1/sandboxes", "/v1/sandboxes", "post", status, "application/json", json.loads(body))
            sandbox = "/v1/sandboxes/" + json.loads(body)["id"]
            status, _, body = call(sock, "GET", "/v1/sandboxes")
            check("GET /v1/sandboxes", "/v1/sandboxes", "get", status, "application/json", json.loads(body))
            status, _, body = call(sock, "GET", sandbox)
            check("GET /v1/sandboxes/{id}", "/v1/sandboxes/{id}", "get", status, "application/json", json.loads(body))
            status, _, body = call(sock, "POST", sandbox + "/execs", {"argv": ["sh", "-c", "echo out; echo err >&2"],
                                                                      "env": {"A": "b"}, "cwd": "/tmp",
                                                                      "timeout_s": 10, "stdin": "in"})
            assert status == 200 and json.loads(body)["stdout"] == "out\n", body
            check("POST /v1/sandboxes/{id}/execs", "/v1/sandboxes/{id}/execs", "post", status, "application/json",
                  json.loads(body))
            status, _, body = call(sock, "POST", sandbox + "/execs", {"argv": ["echo", "x"]},
                                   accept="application/x-ndjson")
            assert status == 200, body
            for number, line in enumerate(body.splitlines()):
                check(f"POST /v1/sandboxes/{{id}}/execs ndjson event {number}", "/v1/sandboxes/{id}/execs", "post",
                      200, "application/x-ndjson", json.loads(line))
            status, _, body = call(sock, "POST", sandbox + "/execs", {"argv": []})
            assert status == 400, body
            check("POST /v1/sandboxes/{id}/execs empty argv", "/v1/sandboxes/{id}/execs", "post", status,
                  "application/json", json.loads(body))
            # A background exec: started (202), looked at, fed stdin, followed, listed, signalled.
            status, _, body = call(sock, "POST", sandbox + "/execs",
                                   {"argv": ["sh", "-c", "cat; echo done; sleep 600"], "background": True,
                                    "stdin": "a", "stdin_open": True})
            assert status == 202, body
            check("POST /v1/sandboxes/{id}/execs background", "/v1/sandboxes/{id}/execs", "post", status,
                  "application/json", json.loads(body))
            execs = sandbox + "/execs/" + json.loads(body)["id"]
            status, _, body = call(sock, "POST", execs + "/stdin?close=1", "b")
            check("POST /v1/sandboxes/{id}/execs/{eid}/stdin", "/v1/sandboxes/{id}/execs/{eid}/stdin", "post",
                  status, "application/json", json.loads(body))
            for _ in range(100):
                status, _, body = call(sock, "GET", execs)
                if json.loads(body).get("stdout") == "ab" + "done\n":
                    break
                time.sleep(0.1)
            assert json.loads(body).get("stdout") == "abdone\n", body
            check("GET /v1/sandboxes/{id}/execs/{eid} running", "/v1/sandboxes/{id}/execs/{eid}", "get", status,
                  "application/json", json.loads(body))
            status, _, body = call(sock, "GET", sandbox + "/execs")
            check("GET /v1/sandboxes/{id}/execs", "/v1/sandboxes/{id}/execs", "get", status, "application/json",
                  json.loads(body))
            status, _, body = call(sock, "POST", execs + "/signal", {"signal": "KILL"})
            check("POST /v1/sandboxes/{id}/execs/{eid}/signal", "/v1/sandboxes/{id}/execs/{eid}/signal", "post",
                  status, "application/json", json.loads(body))
            status, _, body = call(sock, "GET", execs + "/logs?follow=1", accept="application/x-ndjson")
            assert status == 200 and '"result"' in body, body
            for number, line in enumerate(body.splitlines()):
                check(f"GET /v1/sandboxes/{{id}}/execs/{{eid}}/logs event {number}",
                      "/v1/sandboxes/{id}/execs/{eid}/logs", "get", 200, "application/x-ndjson", json.loads(line))
            status, _, body = call(sock, "GET", execs)
            assert json.loads(body)["state"] == "exited", body
            check("GET /v1/sandboxes/{id}/execs/{eid} exited", "/v1/sandboxes/{id}/execs/{eid}", "get", status,
                  "application/json", json.loads(body))
            status, _, body = call(sock, "POST", execs + "/signal", {"signal": "TERM"})
            assert status == 409, body
            check("POST /v1/sandboxes/{id}/execs/{eid}/signal exited", "/v1/sandboxes/{id}/execs/{eid}/signal",
                  "post", status, "application/json", json.loads(body))
            status, _, body = call(sock, "POST", sandbox + "/execs", {"argv": ["sh", "-c", "read x; stty size"],
                                                                      "background": True, "tty": True,
                                                                      "stdin_open": True})
            assert status == 202, body
            terminal = sandbox + "/execs/" + json.loads(body)["id"]
            status, _, body = call(sock, "POST", terminal + "/resize", {"rows": 40, "cols": 120})
            assert status == 200, body
            check("POST /v1/sandboxes/{id}/execs/{eid}/resize", "/v1/sandboxes/{id}/execs/{eid}/resize", "post",
                  status, "application/json", json.loads(body))
            status, _, body = call(sock, "GET", terminal + "/terminal")
            assert status == 426, body
            check("GET /v1/sandboxes/{id}/execs/{eid}/terminal not a WebSocket", "/v1/sandboxes/{id}/execs/{eid}/terminal",
                  "get", status, "application/json", json.loads(body))
            status, _, body = call(sock, "GET", sandbox + "/execs/ex-999/terminal")
            assert status == 404, body
            check("GET /v1/sandboxes/{id}/execs/{eid}/terminal missing", "/v1/sandboxes/{id}/execs/{eid}/terminal",
                  "get", status, "application/json", json.loads(body))
            call(sock, "POST", terminal + "/stdin?close=1", "go\n")
            status, _, body = call(sock, "POST", execs + "/resize", {"rows": 40, "cols": 120})
            assert status == 409, body
            check("POST /v1/sandboxes/{id}/execs/{eid}/resize no terminal", "/v1/sandboxes/{id}/execs/{eid}/resize",
                  "post", status, "application/json", json.loads(body))
            status, _, body = call(sock, "GET", sandbox + "/execs/ex-999")
            assert status == 404, body
            check("GET /v1/sandboxes/{id}/execs/{eid} missing", "/v1/sandboxes/{id}/execs/{eid}", "get", status,
                  "application/json", json.loads(body))
            connection = UnixConnection(sock)
            connection.request("PUT", sandbox + "/files?path=/home/sandbox/f.bin&mode=600", body=b"\x00\xffdata")
            response = connection.getresponse()
            body = response.read().decode()
            connection.close()
            assert response.status == 200, body
            check("PUT /v1/sandboxes/{id}/files", "/v1/sandboxes/{id}/files", "put", 200, "application/json",
                  json.loads(body))
            status, _, data = get_bytes(sock, sandbox + "/files?path=/home/sandbox/f.bin")
            assert status == 200 and data == b"\x00\xffdata", data
            passed.append("GET /v1/sandboxes/{id}/files")
            status, _, body = call(sock, "GET", sandbox + "/list?path=/home/sandbox")
            assert status == 200 and any(e["name"] == "f.bin" and e["mode"] == 0o600 and e["size"] == 6
                                         for e in json.loads(body)["entries"]), body
            check("GET /v1/sandboxes/{id}/list", "/v1/sandboxes/{id}/list", "get", status, "application/json",
                  json.loads(body))
            status, _, body = call(sock, "GET", sandbox + "/list?path=/home/sandbox/f.bin")
            assert status == 404, body
            check("GET /v1/sandboxes/{id}/list not a directory", "/v1/sandboxes/{id}/list", "get", status,
                  "application/json", json.loads(body))
            packed = io.BytesIO()
            with tarfile.open(fileobj=packed, mode="w") as archive:
                entry = tarfile.TarInfo("d/x.txt")
                entry.size = 2
                archive.addfile(entry, io.BytesIO(b"hi"))
                link = tarfile.TarInfo("d/link")
                link.type, link.linkname = tarfile.SYMTYPE, "x.txt"
                archive.addfile(link)
            status, _, body = call(sock, "PUT", sandbox + "/files?path=/home/sandbox/t&format=tar", packed.getvalue())
            assert status == 200 and json.loads(body)["files"] == 1 and json.loads(body)["symlinks"] == 1, body
            check("PUT /v1/sandboxes/{id}/files format=tar", "/v1/sandboxes/{id}/files", "put", status,
                  "application/json", json.loads(body))
            status, _, body = call(sock, "PUT", sandbox + "/files?path=/home/sandbox/t&format=tar", "not a tar" * 100)
            assert status == 400, body
            check("PUT /v1/sandboxes/{id}/files format=tar not a tar", "/v1/sandboxes/{id}/files", "put", status,
                  "application/json", json.loads(body))
            status, content_type, data = get_bytes(sock, sandbox + "/files?path=/home/sandbox/t&format=tar")
            assert status == 200 and content_type == "application/x-tar", data[:200]
            with tarfile.open(fileobj=io.BytesIO(data)) as archive:
                assert archive.extractfile("./d/x.txt").read() == b"hi" and archive.getmember("./d/link").issym()
            passed.append("GET /v1/sandboxes/{id}/files format=tar")
            status, _, body = call(sock, "GET", sandbox + "/stat?path=/home/sandbox/t/d/link")
            assert status == 200 and json.loads(body)["target"] == "x.txt", body
            check("GET /v1/sandboxes/{id}/stat", "/v1/sandboxes/{id}/stat", "get", status, "application/json",
                  json.loads(body))
            status, _, body = call(sock, "GET", sandbox + "/stat?path=/home/sandbox/none")
            assert status == 404, body
            check("GET /v1/sandboxes/{id}/stat missing", "/v1/sandboxes/{id}/stat", "get", status,
                  "application/json", json.loads(body))
            status, _, body = call(sock, "DELETE", sandbox + "/files?path=/home/sandbox/f.bin")
            assert status == 200, body
            check("DELETE /v1/sandboxes/{id}/files", "/v1/sandboxes/{id}/files", "delete", status,
                  "application/json", json.loads(body))
            status, _, body = call(sock, "DELETE", sandbox + "/files?path=/home")
            assert status == 403, body
            check("DELETE /v1/sandboxes/{id}/files forbidden", "/v1/sandboxes/{id}/files", "delete", status,
                  "application/json", json.loads(body))
            status, _, body = call(sock, "GET", sandbox + "/files?path=/home/sandbox/none")
            assert status == 404, body
            check("GET /v1/sandboxes/{id}/files missing", "/v1/sandboxes/{id}/files", "get", status,
                  "application/json", json.loads(body))
            status, _, body = call(sock, "PUT", sandbox + "/files?path=/etc/x", "x")
            assert status == 403, body
            check("PUT /v1/sandboxes/{id}/files forbidden", "/v1/sandboxes/{id}/files", "put", status,
                  "application/json", json.loads(body))
            status, _, body = call(sock, "POST", sandbox + "/ports", {"port": 8000})
            assert status == 201, body
            check("POST /v1/sandboxes/{id}/ports", "/v1/sandboxes/{id}/ports", "post", status, "application/json",
                  json.loads(body))
            status, _, body = call(sock, "POST", sandbox + "/ports", {"port": 8000})
            assert status == 409, body
            check("POST /v1/sandboxes/{id}/ports twice", "/v1/sandboxes/{id}/ports", "post", status,
                  "application/json", json.loads(body))
            status, _, body = call(sock, "GET", sandbox + "/ports")
            check("GET /v1/sandboxes/{id}/ports", "/v1/sandboxes/{id}/ports", "get", status, "application/json",
                  json.loads(body))
            status, _, body = call(sock, "DELETE", sandbox + "/ports/8000")
            check("DELETE /v1/sandboxes/{id}/ports/{port}", "/v1/sandboxes/{id}/ports/{port}", "delete", status,
                  "application/json", json.loads(body))
            status, _, body = call(sock, "DELETE", sandbox + "/ports/8000")
            assert status == 404, body
            check("DELETE /v1/sandboxes/{id}/ports/{port} missing", "/v1/sandboxes/{id}/ports/{port}", "delete",
                  status, "application/json", json.loads(body))
            status, _, body = call(sock, "POST", sandbox + "/touch", "")
            check("POST /v1/sandboxes/{id}/touch", "/v1/sandboxes/{id}/touch", "post", status, "application/json",
                  json.loads(body))
            def checked(label, method, path, spec_path, spec_method, expected, body=None):
                status, _, answer = call(sock, method, path, body)
                assert status == expected, f"{label}: {status} {answer}"
                document = json.loads(answer)
                check(label, spec_path, spec_method, status, "application/json", document)
                return document

            paused = checked("POST /v1/sandboxes/{id}/pause", "POST", sandbox + "/pause", "/v1/sandboxes/{id}/pause",
                             "post", 200, "")
            assert paused["state"] == "paused", paused
            checked("POST /v1/sandboxes/{id}/snapshots paused", "POST", sandbox + "/snapshots",
                    "/v1/sandboxes/{id}/snapshots", "post", 409, {})
            checked("POST /v1/sandboxes/{id}/resume", "POST", sandbox + "/resume", "/v1/sandboxes/{id}/resume",
                    "post", 200, "")
            snapshot = checked("POST /v1/sandboxes/{id}/snapshots", "POST", sandbox + "/snapshots",
                               "/v1/sandboxes/{id}/snapshots", "post", 201, {"name": "contract", "labels": {"a": "b"}})
            checked("POST /v1/sandboxes/{id}/snapshots bad name", "POST", sandbox + "/snapshots",
                    "/v1/sandboxes/{id}/snapshots", "post", 400, {"name": "a b"})
            checked("GET /v1/snapshots", "GET", "/v1/snapshots", "/v1/snapshots", "get", 200)
            checked("GET /v1/snapshots/{snapshot}", "GET", "/v1/snapshots/contract", "/v1/snapshots/{snapshot}",
                    "get", 200)
            checked("GET /v1/snapshots/{snapshot} missing", "GET", "/v1/snapshots/none", "/v1/snapshots/{snapshot}",
                    "get", 404)
            checked("POST /v1/snapshots/{snapshot}/verify", "POST", "/v1/snapshots/contract/verify",
                    "/v1/snapshots/{snapshot}/verify", "post", 200, "")
            checked("POST /v1/snapshots/{snapshot}/verify missing", "POST", "/v1/snapshots/none/verify",
                    "/v1/snapshots/{snapshot}/verify", "post", 404, "")
            copy = checked("POST /v1/snapshots/{snapshot}/restore", "POST", "/v1/snapshots/contract/restore",
                           "/v1/snapshots/{snapshot}/restore", "post", 201, {"ttl_s": 60})
            assert copy["origin_snapshot"] == snapshot["id"], copy
            checked("POST /v1/snapshots/{snapshot}/restore missing", "POST", "/v1/snapshots/none/restore",
                    "/v1/snapshots/{snapshot}/restore", "post", 404, {})
            checked("DELETE /v1/snapshots/{snapshot} in use", "DELETE", "/v1/snapshots/contract",
                    "/v1/snapshots/{snapshot}", "delete", 409)
            forked = checked("POST /v1/sandboxes/{id}/fork", "POST", sandbox + "/fork", "/v1/sandboxes/{id}/fork",
                             "post", 200, {"count": 1})
            assert len(forked["copies"]) == 1 and "sandbox" in forked["copies"][0], forked
            checked("POST /v1/sandboxes/{id}/fork bad count", "POST", sandbox + "/fork", "/v1/sandboxes/{id}/fork",
                    "post", 400, {"count": 0})
            for made in [copy["id"], forked["copies"][0]["sandbox"]["id"]]:
                assert call(sock, "DELETE", "/v1/sandboxes/" + made)[0] == 200
            checked("DELETE /v1/snapshots/{snapshot}", "DELETE", "/v1/snapshots/contract", "/v1/snapshots/{snapshot}",
                    "delete", 200)

            # Code contexts, in a python sandbox (the shell image has no interpreter for one).
            status, _, body = call(sock, "POST", "/v1/sandboxes", {"language": "python", "ttl_s": 600})
            assert status == 201, body
            notebook = "/v1/sandboxes/" + json.loads(body)["id"]
            contexts = notebook + "/contexts"
            checked("POST /v1/sandboxes/{id}/contexts", "POST", contexts, "/v1/sandboxes/{id}/contexts", "post",
                    201, {"name": "c", "language": "python"})
            checked("POST /v1/sandboxes/{id}/contexts taken", "POST", contexts, "/v1/sandboxes/{id}/contexts",
                    "post", 409, {"name": "c"})
            checked("POST /v1/sandboxes/{id}/contexts bad language", "POST", contexts,
                    "/v1/sandboxes/{id}/contexts", "post", 400, {"language": "cobol"})
            checked("POST /v1/sandboxes/{id}/contexts no node", "POST", contexts, "/v1/sandboxes/{id}/contexts",
                    "post", 409, {"language": "javascript"})
            checked("GET /v1/sandboxes/{id}/contexts", "GET", contexts, "/v1/sandboxes/{id}/contexts", "get", 200)
            run = "/v1/sandboxes/{id}/contexts/{name}/run"
            cell = checked("POST .../contexts/{name}/run", "POST", contexts + "/c/run", run, "post", 200,
                           {"code": "print('p')\n{'a': 1}"})
            assert cell["text"] == "{'a': 1}" and cell["result"]["application/json"] == {"a": 1}, cell
            failed = checked("POST .../contexts/{name}/run error", "POST", contexts + "/c/run", run, "post", 200,
                             {"code": "1/0"})
            assert failed["status"] == "error" and failed["error"]["name"] == "ZeroDivisionError", failed
            checked("POST .../contexts/{name}/run timeout", "POST", contexts + "/c/run", run, "post", 200,
                    {"code": "import time; time.sleep(5)", "timeout_s": 1})
            checked("POST .../contexts/{name}/run bad", "POST", contexts + "/c/run", run, "post", 400, {"code": 1})
            checked("POST .../contexts/{name}/run missing", "POST", contexts + "/none/run", run, "post", 404,
                    {"code": "1"})
            status, content_type, body = call(sock, "POST", contexts + "/c/run",
                                              {"code": "print(1)\ndisplay(2)\nraise ValueError('v')"},
                                              accept="application/x-ndjson")
            assert status == 200 and content_type.startswith("application/x-ndjson"), (status, body)
            lines = [json.loads(line) for line in body.splitlines() if line]
            assert [line["type"] for line in lines] == ["stdout", "display", "error", "done"], lines
            for number, line in enumerate(lines):
                check(f"POST .../contexts/{{name}}/run ndjson event {number}", run, "post", 200,
                      "application/x-ndjson", line)
            checked("GET /v1/sandboxes/{id}/contexts/{name}", "GET", contexts + "/c",
                    "/v1/sandboxes/{id}/contexts/{name}", "get", 200)
            checked("POST .../contexts/{name}/interrupt", "POST", contexts + "/c/interrupt",
                    "/v1/sandboxes/{id}/contexts/{name}/interrupt", "post", 200, "")
            restarted = checked("POST .../contexts/{name}/restart", "POST", contexts + "/c/restart",
                                "/v1/sandboxes/{id}/contexts/{name}/restart", "post", 200, "")
            assert restarted["execution_count"] == 0, restarted
            checked("DELETE /v1/sandboxes/{id}/contexts/{name}", "DELETE", contexts + "/c",
                    "/v1/sandboxes/{id}/contexts/{name}", "delete", 200)
            checked("GET /v1/sandboxes/{id}/contexts/{name} gone", "GET", contexts + "/c",
                    "/v1/sandboxes/{id}/contexts/{name}", "get", 404)
            assert call(sock, "DELETE", notebook)[0] == 200

            status, _, body = call(sock, "DELETE", sandbox)
            assert status == 200 and json.loads(body)["state"] == "stopped", body
            check("DELETE /v1/sandboxes/{id}", "/v1/sandboxes/{id}", "delete", status, "application/json",
                  json.loads(body))
            status, _, body = call(sock, "GET", sandbox)
            assert status == 404, body
            check("GET /v1/sandboxes/{id} gone", "/v1/sandboxes/{id}", "get", status, "application/json",
                  json.loads(body))
            status, _, body = call(sock, "POST", "/v1/sandboxes", {"language": "shell", "ttl_s": 1, "idle_timeout_s": 1})
            assert status == 201, body
            expired = "/v1/sandboxes/" + json.loads(body)["id"]
            time.sleep(2)
            status, _, body = call(sock, "POST", expired + "/touch", "")
            assert status == 409, body
            check("POST /v1/sandboxes/{id}/touch stopped", "/v1/sandboxes/{id}/touch", "post", status,
                  "application/json", json.loads(body))
            status, _, body = call(sock, "POST", "/v1/sandboxes", {"language": "shell", "nope": 1})
            assert status == 400, body
            check("POST /v1/sandboxes unknown field", "/v1/sandboxes", "post", status, "application/json",
                  json.loads(body))

            status, content_type, body = call(sock, "GET", "/metrics")
            assert status == 200 and content_type.startswith("text/plain") and "airlock_runs_total" in body
            passed.append("GET /metrics")
        finally:
            daemon.send_signal(signal.SIGTERM)
            if daemon.wait(timeout=60) != 0:
                sys.exit("FAIL: airlockd did not exit cleanly on SIGTERM")

    for label in passed:
        print(f"ok  {label}")
    print(f"{len(passed)} passed, 0 failed")


if __name__ == "__main__":
    main()
