"""The API's operations, written once: each is a generator that yields the
Requests it needs and is sent their Responses, then returns its value. The
sync front end drives them over blocking sockets, the async one over
asyncio (drive / drive_async), so neither holds a copy of the API."""
from __future__ import annotations

import base64
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Dict, Generator, List, Optional, Sequence, Union

from ._http import Request, Response, json_request
from .errors import InvalidArgument, NotFound, SandboxError, error_from

Op = Generator[Request, Response, Any]


def call(method: str, path: str, document: Any = None, ok: Sequence[int] = (200, 201, 202), **options: Any) -> Op:
    response = yield json_request(method, path, document, **options)
    if response.status not in ok:
        raise error_from(response.status, _json_or_none(response))
    return response.json()


def _json_or_none(response: Response) -> Any:
    try:
        return response.json()
    except SandboxError:
        return None


def quote(path: str) -> str:
    return urllib.parse.quote(path, safe="/")


# --- results -----------------------------------------------------------------

@dataclass
class RunResult:
    """How a program ended: the API's RunResult (docs/api.yaml)."""

    status: str
    exit_code: Optional[int]
    stdout: str
    stderr: str
    error: Optional[str]
    timing: Dict[str, Any]
    raw: Dict[str, Any] = field(repr=False)

    @staticmethod
    def of(document: Dict[str, Any]) -> "RunResult":
        return RunResult(status=document.get("status", ""), exit_code=document.get("exit_code"),
                         stdout=_text(document, "stdout"), stderr=_text(document, "stderr"),
                         error=document.get("error"), timing=document.get("timing", {}), raw=document)

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.exit_code == 0


def _text(document: Dict[str, Any], name: str) -> str:
    value = document.get(name, "")
    if document.get(name + "_encoding") == "base64":
        try:
            return base64.b64decode(value).decode("utf-8", "replace")
        except ValueError:
            raise SandboxError(f"airlockd sent {name} as base64 that does not decode") from None
    return value if isinstance(value, str) else ""


@dataclass
class ExecutionError:
    name: str
    value: str
    traceback: List[str]


@dataclass
class Execution:
    """A cell's outcome in a code context: `text` is its value's text/plain."""

    status: str
    execution_count: int
    stdout: str
    stderr: str
    result: Optional[Dict[str, Any]]
    displays: List[Dict[str, Any]]
    error: Optional[ExecutionError]
    raw: Dict[str, Any] = field(repr=False)

    @staticmethod
    def of(document: Dict[str, Any]) -> "Execution":
        error = document.get("error")
        return Execution(status=document.get("status", ""), execution_count=document.get("execution_count", 0),
                         stdout=document.get("stdout", ""), stderr=document.get("stderr", ""),
                         result=document.get("result"), displays=list(document.get("displays", [])),
                         error=ExecutionError(error["name"], error["value"], list(error["traceback"])) if error else None,
                         raw=document)

    @property
    def text(self) -> Optional[str]:
        return self.result.get("text/plain") if self.result else None

    @property
    def results(self) -> List[Dict[str, Any]]:
        """What the cell showed, in order: its displays, then its value."""
        return self.displays + ([self.result] if self.result else [])


@dataclass
class SnapshotInfo:
    id: str
    name: str
    raw: Dict[str, Any] = field(repr=False)


# --- requests ----------------------------------------------------------------

def sandbox_spec(language: str, memory_mb: Optional[int], cpus: Optional[int], ttl: Optional[int],
                 idle_timeout: Optional[int], network: Optional[str], mounts: Optional[List[str]],
                 image: Optional[str] = None) -> Dict[str, Any]:
    spec: Dict[str, Any] = {"language": language}
    for key, value in (("image", image), ("memory_mb", memory_mb), ("cpus", cpus), ("ttl_s", ttl), ("idle_timeout_s", idle_timeout),
                       ("network", network), ("mounts", mounts)):
        if value is not None:
            spec[key] = value
    return spec


def exec_spec(command: Union[str, Sequence[str]], *, background: bool = False, timeout: Optional[int] = None,
              env: Optional[Dict[str, str]] = None, cwd: Optional[str] = None,
              stdin: Optional[Union[str, bytes]] = None, stdin_open: bool = False) -> Dict[str, Any]:
    argv = ["sh", "-c", command] if isinstance(command, str) else list(command)
    spec: Dict[str, Any] = {"argv": argv}
    if background:
        spec["background"] = True
    if stdin_open:
        spec["stdin_open"] = True
    if timeout is not None:
        spec["timeout_s"] = timeout
    if env:
        spec["env"] = dict(env)
    if cwd:
        spec["cwd"] = cwd
    if stdin is not None:
        try:
            spec["stdin"] = stdin if isinstance(stdin, str) else stdin.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidArgument("stdin must be text (UTF-8); upload binary input as a file") from None
    return spec


def margin(timeout: Optional[int]) -> Optional[float]:
    """How long to wait for an answer to something that may run `timeout` seconds."""
    return None if not timeout else float(timeout) + 30.0


def run_code(sandbox_id: str, code: str, context: str, language: Optional[str], timeout: Optional[int]) -> Op:
    """A cell in `context`, which is made (in `language`) on first use."""
    base = f"/v1/sandboxes/{sandbox_id}/contexts"
    cell: Dict[str, Any] = {"code": code}
    if timeout is not None:
        cell["timeout_s"] = timeout
    try:
        document = yield from call("POST", f"{base}/{context}/run", cell, timeout=margin(timeout))
    except NotFound as error:
        if "no code context" not in error.message:
            raise
        made: Dict[str, Any] = {"name": context}
        if language:
            made["language"] = language
        yield from call("POST", base, made)
        document = yield from call("POST", f"{base}/{context}/run", cell, timeout=margin(timeout))
    return Execution.of(document)


def _raw(method: str, target: str, data: Union[str, bytes, None] = None) -> Op:
    """A request whose body is raw bytes (files, stdin); the Response when 200."""
    body = data.encode("utf-8") if isinstance(data, str) else bytes(data or b"")
    response = yield Request(method, target, body, content_type="application/octet-stream")
    if response.status != 200:
        raise error_from(response.status, _json_or_none(response))
    return response


def write_file(sandbox_id: str, path: str, data: Union[str, bytes], mode: int) -> Op:
    target = f"{sandbox_path(sandbox_id)}/files?path={quote(path)}&mode={mode:o}"
    return (yield from _raw("PUT", target, data)).json()


def read_file(sandbox_id: str, path: str) -> Op:
    return (yield from _raw("GET", f"{sandbox_path(sandbox_id)}/files?path={quote(path)}")).body


def sandbox_path(sandbox_id: str) -> str:
    return f"/v1/sandboxes/{sandbox_id}"


def snapshot(sandbox_id: str, name: Optional[str], labels: Optional[Dict[str, str]]) -> Op:
    spec: Dict[str, Any] = {}
    if name:
        spec["name"] = name
    if labels:
        spec["labels"] = labels
    document = yield from call("POST", f"{sandbox_path(sandbox_id)}/snapshots", spec)
    return SnapshotInfo(document["id"], document["name"], document)


# A fork's copy that failed carries the API's error code, not a status.
_CODE_STATUS = {"invalid_argument": 400, "not_found": 404, "conflict": 409, "overloaded": 429, "no_space": 507,
                "unavailable": 503}


def fork(sandbox_id: str, count: int) -> Op:
    """Each copy's sandbox document, or the SandboxError that copy met."""
    answer = yield from call("POST", f"{sandbox_path(sandbox_id)}/fork", {"count": count})
    return [copy["sandbox"] if "sandbox" in copy
            else error_from(_CODE_STATUS.get(copy.get("error", {}).get("code", ""), 500), copy)
            for copy in answer["copies"]]


def restore(snapshot_name_or_id: str) -> Op:
    return (yield from call("POST", f"/v1/snapshots/{urllib.parse.quote(snapshot_name_or_id, safe='')}/restore", {}))


def destroy(sandbox_id: str) -> Op:
    """Idempotent: a sandbox already gone is fine."""
    try:
        yield from call("DELETE", sandbox_path(sandbox_id))
    except NotFound:
        pass


def list_sandboxes() -> Op:
    return (yield from call("GET", "/v1/sandboxes"))["sandboxes"]


def touch(sandbox_id: str) -> Op:
    """Counts as use: its idle timeout starts again."""
    return (yield from call("POST", f"{sandbox_path(sandbox_id)}/touch"))


def forward_port(sandbox_id: str, port: int) -> Op:
    """A host loopback port (the kernel's choice) carried to `port` on the sandbox's loopback."""
    return (yield from call("POST", f"{sandbox_path(sandbox_id)}/ports", {"port": port}))


def list_ports(sandbox_id: str) -> Op:
    return (yield from call("GET", f"{sandbox_path(sandbox_id)}/ports"))["ports"]


def close_port(sandbox_id: str, port: int) -> Op:
    return (yield from call("DELETE", f"{sandbox_path(sandbox_id)}/ports/{int(port)}"))


def list_images() -> Op:
    return (yield from call("GET", "/v1/images"))["images"]


def list_snapshots() -> Op:
    return (yield from call("GET", "/v1/snapshots"))["snapshots"]


def delete_snapshot(snapshot_name_or_id: str) -> Op:
    return (yield from call("DELETE", f"/v1/snapshots/{urllib.parse.quote(snapshot_name_or_id, safe='')}"))


def list_files(sandbox_id: str, path: str) -> Op:
    return (yield from call("GET", f"{sandbox_path(sandbox_id)}/list?path={quote(path)}"))["entries"]


def start_exec(sandbox_id: str, spec: Dict[str, Any]) -> Op:
    return (yield from call("POST", f"{sandbox_path(sandbox_id)}/execs", spec))["id"]


def exec_info(sandbox_id: str, exec_id: str) -> Op:
    return (yield from call("GET", f"{sandbox_path(sandbox_id)}/execs/{exec_id}"))


def exec_result(info: Dict[str, Any]) -> Optional[RunResult]:
    """The result of an exec that ended, from its GET; None while it runs."""
    return RunResult.of(info["result"]) if info.get("state") == "exited" and info.get("result") else None


def signal_exec(sandbox_id: str, exec_id: str, signal: Union[int, str]) -> Op:
    return (yield from call("POST", f"{sandbox_path(sandbox_id)}/execs/{exec_id}/signal", {"signal": signal}))


def send_stdin(sandbox_id: str, exec_id: str, data: Union[str, bytes], close: bool) -> Op:
    """More stdin for an exec started with stdin_open; `close` ends it after."""
    target = f"{sandbox_path(sandbox_id)}/execs/{exec_id}/stdin" + ("?close=1" if close else "")
    return (yield from _raw("POST", target, data)).json()


def drive(op: Op, transport: Any) -> Any:
    """Runs an operation over a blocking transport."""
    try:
        request = next(op)
        while True:
            request = op.send(transport.send(request))
    except StopIteration as done:
        return done.value


async def drive_async(op: Op, transport: Any) -> Any:
    """Runs an operation over an asyncio transport."""
    try:
        request = next(op)
        while True:
            request = op.send(await transport.send(request))
    except StopIteration as done:
        return done.value
