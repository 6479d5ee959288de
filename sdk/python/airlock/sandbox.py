"""The front ends: run(), Sandbox (blocking) and AsyncSandbox (asyncio), thin
over the operations of _ops.py."""
from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from . import _ops
from ._client import Client, default_client
from ._http import json_request
from ._ops import Execution, RunResult, SnapshotInfo, call, drive, drive_async
from .errors import SandboxError

Command = Union[str, Sequence[str]]
OnOutput = Optional[Callable[[str], Any]]


def _run_spec(code: str, language: str, timeout: Optional[int], stdin: Optional[str],
              options: Dict[str, Any]) -> Dict[str, Any]:
    spec: Dict[str, Any] = {"language": language, "code": code, **options}
    if timeout is not None:
        spec["timeout_s"] = timeout
    if stdin is not None:
        spec["stdin"] = stdin
    return spec


def run(code: str, language: str = "python", timeout: Optional[int] = None, *, stdin: Optional[str] = None,
        client: Optional[Client] = None, **options: Any) -> RunResult:
    """Runs `code` once in a fresh microVM (POST /v1/run). `options`: the API's
    RunRequest fields (image, memory_mb, network, mounts, env, ...)."""
    client = client or default_client()
    op = call("POST", "/v1/run", _run_spec(code, language, timeout, stdin, options), timeout=_ops.margin(timeout))
    return RunResult.of(drive(op, client.sync))


async def arun(code: str, language: str = "python", timeout: Optional[int] = None, *, stdin: Optional[str] = None,
               client: Optional[Client] = None, **options: Any) -> RunResult:
    client = client or default_client()
    op = call("POST", "/v1/run", _run_spec(code, language, timeout, stdin, options), timeout=_ops.margin(timeout))
    return RunResult.of(await drive_async(op, client.aio))


def list_images(client: Optional[Client] = None) -> List[Dict[str, Any]]:
    """Every image a run or sandbox can name (built, then imported): name, origin, languages, env, digest."""
    client = client or default_client()
    return drive(_ops.list_images(), client.sync)


async def alist_images(client: Optional[Client] = None) -> List[Dict[str, Any]]:
    client = client or default_client()
    return await drive_async(_ops.list_images(), client.aio)


def list_snapshots(client: Optional[Client] = None) -> List[Dict[str, Any]]:
    """Every stored snapshot, oldest first (the API's documents)."""
    client = client or default_client()
    return drive(_ops.list_snapshots(), client.sync)


def delete_snapshot(snapshot: str, client: Optional[Client] = None) -> Dict[str, Any]:
    """Deletes a snapshot by name or id (Conflict while a sandbox restored from it lives)."""
    client = client or default_client()
    return drive(_ops.delete_snapshot(snapshot), client.sync)


async def alist_snapshots(client: Optional[Client] = None) -> List[Dict[str, Any]]:
    client = client or default_client()
    return await drive_async(_ops.list_snapshots(), client.aio)


async def adelete_snapshot(snapshot: str, client: Optional[Client] = None) -> Dict[str, Any]:
    client = client or default_client()
    return await drive_async(_ops.delete_snapshot(snapshot), client.aio)


def _result_from_events(events: Any, on_stdout: OnOutput, on_stderr: OnOutput) -> Optional[Dict[str, Any]]:
    """Hands output events to the callbacks; the result the stream ends with."""
    for event in events:
        kind = event.get("type")
        if kind in ("stdout", "stderr"):
            text = event["data"] if event.get("encoding") != "base64" else _ops._text(event, "data")
            callback = on_stdout if kind == "stdout" else on_stderr
            if callback:
                callback(text)
        elif kind == "result":
            return event["result"]
    return None


class CommandHandle:
    """A background command: its id, and ways to wait for it, read it, feed
    it, or stop it."""

    def __init__(self, sandbox: "Sandbox", exec_id: str) -> None:
        self.sandbox = sandbox
        self.id = exec_id

    def info(self) -> Dict[str, Any]:
        """Its state, and its output so far (the last 1 MiB of each stream)."""
        return self.sandbox._drive(_ops.exec_info(self.sandbox.id, self.id))

    def wait(self, timeout: Optional[float] = None) -> RunResult:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            result = _ops.exec_result(self.info())
            if result:
                return result
            if deadline is not None and time.monotonic() > deadline:
                raise SandboxError(f"exec {self.id} is still running after {timeout} s")
            time.sleep(0.05)

    def send_stdin(self, data: Union[str, bytes], close: bool = False) -> Dict[str, Any]:
        """More input, for a command started with stdin_open=True."""
        return self.sandbox._drive(_ops.send_stdin(self.sandbox.id, self.id, data, close))

    def kill(self, signal: Union[int, str] = "KILL") -> None:
        self.sandbox._drive(_ops.signal_exec(self.sandbox.id, self.id, signal))


class Commands:
    def __init__(self, sandbox: "Sandbox") -> None:
        self._sandbox = sandbox

    def run(self, command: Command, *, background: bool = False, on_stdout: OnOutput = None,
            on_stderr: OnOutput = None, timeout: Optional[int] = None, env: Optional[Dict[str, str]] = None,
            cwd: Optional[str] = None, stdin: Optional[Union[str, bytes]] = None, stdin_open: bool = False) -> Any:
        """A command (a string runs under sh -c; a list is the argv): waited
        for, its result; with `background`, a CommandHandle at once. Output
        reaches `on_stdout`/`on_stderr` as it is produced."""
        spec = _ops.exec_spec(command, background=background, timeout=timeout, env=env, cwd=cwd, stdin=stdin,
                              stdin_open=stdin_open)
        if background:
            return CommandHandle(self._sandbox, self._sandbox._drive(_ops.start_exec(self._sandbox.id, spec)))
        path = f"{self._sandbox._path}/execs"
        wait = _ops.margin(timeout)
        if on_stdout or on_stderr:
            events = self._sandbox._client.sync.stream(json_request("POST", path, spec, stream=True, timeout=wait))
            try:
                result = _result_from_events(events, on_stdout, on_stderr)
            finally:
                events.close()  # a callback that raised leaves no connection open
            if result is None:
                raise SandboxError(f"the output of the command in {self._sandbox.id} ended without its result")
            return RunResult.of(result)
        return RunResult.of(self._sandbox._drive(call("POST", path, spec, timeout=wait)))


class Files:
    def __init__(self, sandbox: "Sandbox") -> None:
        self._sandbox = sandbox

    def write(self, path: str, data: Union[str, bytes], mode: int = 0o644) -> Dict[str, Any]:
        return self._sandbox._drive(_ops.write_file(self._sandbox.id, path, data, mode))

    def read(self, path: str) -> bytes:
        return self._sandbox._drive(_ops.read_file(self._sandbox.id, path))

    def list(self, path: str = "/home/sandbox") -> List[Dict[str, Any]]:
        return self._sandbox._drive(_ops.list_files(self._sandbox.id, path))

    def remove(self, path: str) -> None:
        self._sandbox._call("DELETE", f"{self._sandbox._path}/files?path={_ops.quote(path)}")


class Sandbox:
    """A live sandbox: create once, run many commands, move files, keep code
    contexts. Used as a context manager, it is destroyed at the end."""

    def __init__(self, info: Dict[str, Any], client: Client) -> None:
        self._client = client
        self.id: str = info["id"]
        self._path = _ops.sandbox_path(self.id)
        self.commands = Commands(self)
        self.files = Files(self)

    def _drive(self, op: _ops.Op) -> Any:
        return drive(op, self._client.sync)

    def _call(self, method: str, path: str, document: Any = None) -> Any:
        return self._drive(call(method, path, document))

    @classmethod
    def create(cls, language: str = "python", *, memory_mb: Optional[int] = None, cpus: Optional[int] = None,
               ttl: Optional[int] = None, idle_timeout: Optional[int] = None, network: Optional[str] = None,
               mounts: Optional[List[str]] = None, image: Optional[str] = None,
               client: Optional[Client] = None) -> "Sandbox":
        client = client or default_client()
        spec = _ops.sandbox_spec(language, memory_mb, cpus, ttl, idle_timeout, network, mounts, image)
        return cls(drive(call("POST", "/v1/sandboxes", spec), client.sync), client)

    @classmethod
    def connect(cls, sandbox_id: str, client: Optional[Client] = None) -> "Sandbox":
        client = client or default_client()
        return cls(drive(call("GET", _ops.sandbox_path(sandbox_id)), client.sync), client)

    @classmethod
    def restore(cls, snapshot: str, client: Optional[Client] = None) -> "Sandbox":
        """A new sandbox from a snapshot (its name or id)."""
        client = client or default_client()
        return cls(drive(_ops.restore(snapshot), client.sync), client)

    @classmethod
    def list(cls, client: Optional[Client] = None) -> List[Dict[str, Any]]:
        """Every sandbox of the daemon, live and recently stopped (the API's documents)."""
        client = client or default_client()
        return drive(_ops.list_sandboxes(), client.sync)

    def info(self) -> Dict[str, Any]:
        return self._call("GET", self._path)

    def touch(self) -> None:
        """Counts as use: its idle timeout starts again (reading its info does not)."""
        self._drive(_ops.touch(self.id))

    def forward_port(self, port: int) -> Dict[str, Any]:
        """127.0.0.1:`host_port` on this host reaches `port` on the sandbox's loopback (no network needed)."""
        return self._drive(_ops.forward_port(self.id, port))

    def ports(self) -> List[Dict[str, Any]]:
        return self._drive(_ops.list_ports(self.id))

    def close_port(self, port: int) -> None:
        self._drive(_ops.close_port(self.id, port))

    def run_code(self, code: str, *, context: str = "default", language: Optional[str] = None,
                 timeout: Optional[int] = None) -> Execution:
        """A cell in a stateful code context (made on first use)."""
        return self._drive(_ops.run_code(self.id, code, context, language, timeout))

    def snapshot(self, name: Optional[str] = None, labels: Optional[Dict[str, str]] = None) -> SnapshotInfo:
        return self._drive(_ops.snapshot(self.id, name, labels))

    def fork(self, count: int) -> List[Union["Sandbox", SandboxError]]:
        """`count` live copies: each a Sandbox, or the error that copy met."""
        return [copy if isinstance(copy, SandboxError) else Sandbox(copy, self._client)
                for copy in self._drive(_ops.fork(self.id, count))]

    def pause(self) -> None:
        self._call("POST", f"{self._path}/pause")

    def resume(self) -> None:
        self._call("POST", f"{self._path}/resume")

    def kill(self) -> None:
        """Destroys it (idempotent)."""
        self._drive(_ops.destroy(self.id))

    close = kill

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.kill()


class AsyncCommandHandle:
    """CommandHandle for asyncio."""

    def __init__(self, sandbox: "AsyncSandbox", exec_id: str) -> None:
        self.sandbox = sandbox
        self.id = exec_id

    async def info(self) -> Dict[str, Any]:
        return await self.sandbox._drive(_ops.exec_info(self.sandbox.id, self.id))

    async def wait(self, timeout: Optional[float] = None) -> RunResult:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            result = _ops.exec_result(await self.info())
            if result:
                return result
            if deadline is not None and time.monotonic() > deadline:
                raise SandboxError(f"exec {self.id} is still running after {timeout} s")
            await asyncio.sleep(0.05)

    async def send_stdin(self, data: Union[str, bytes], close: bool = False) -> Dict[str, Any]:
        return await self.sandbox._drive(_ops.send_stdin(self.sandbox.id, self.id, data, close))

    async def kill(self, signal: Union[int, str] = "KILL") -> None:
        await self.sandbox._drive(_ops.signal_exec(self.sandbox.id, self.id, signal))


class AsyncCommands:
    def __init__(self, sandbox: "AsyncSandbox") -> None:
        self._sandbox = sandbox

    async def run(self, command: Command, *, background: bool = False, on_stdout: OnOutput = None,
                  on_stderr: OnOutput = None, timeout: Optional[int] = None, env: Optional[Dict[str, str]] = None,
                  cwd: Optional[str] = None, stdin: Optional[Union[str, bytes]] = None,
                  stdin_open: bool = False) -> Any:
        spec = _ops.exec_spec(command, background=background, timeout=timeout, env=env, cwd=cwd, stdin=stdin,
                              stdin_open=stdin_open)
        if background:
            return AsyncCommandHandle(self._sandbox, await self._sandbox._drive(_ops.start_exec(self._sandbox.id, spec)))
        path = f"{self._sandbox._path}/execs"
        wait = _ops.margin(timeout)
        if on_stdout or on_stderr:
            result = None
            events = self._sandbox._client.aio.stream(json_request("POST", path, spec, stream=True, timeout=wait))
            try:
                async for event in events:
                    result = _result_from_events([event], on_stdout, on_stderr) or result
            finally:
                await events.aclose()
            if result is None:
                raise SandboxError(f"the output of the command in {self._sandbox.id} ended without its result")
            return RunResult.of(result)
        return RunResult.of(await self._sandbox._drive(call("POST", path, spec, timeout=wait)))


class AsyncFiles:
    def __init__(self, sandbox: "AsyncSandbox") -> None:
        self._sandbox = sandbox

    async def write(self, path: str, data: Union[str, bytes], mode: int = 0o644) -> Dict[str, Any]:
        return await self._sandbox._drive(_ops.write_file(self._sandbox.id, path, data, mode))

    async def read(self, path: str) -> bytes:
        return await self._sandbox._drive(_ops.read_file(self._sandbox.id, path))

    async def list(self, path: str = "/home/sandbox") -> List[Dict[str, Any]]:
        return await self._sandbox._drive(_ops.list_files(self._sandbox.id, path))

    async def remove(self, path: str) -> None:
        await self._sandbox._call("DELETE", f"{self._sandbox._path}/files?path={_ops.quote(path)}")


class AsyncSandbox:
    """Sandbox for asyncio: `sb = await AsyncSandbox.create(...)`, `async with sb:`."""

    def __init__(self, info: Dict[str, Any], client: Client) -> None:
        self._client = client
        self.id: str = info["id"]
        self._path = _ops.sandbox_path(self.id)
        self.commands = AsyncCommands(self)
        self.files = AsyncFiles(self)

    async def _drive(self, op: _ops.Op) -> Any:
        return await drive_async(op, self._client.aio)

    async def _call(self, method: str, path: str, document: Any = None) -> Any:
        return await self._drive(call(method, path, document))

    @classmethod
    async def create(cls, language: str = "python", *, memory_mb: Optional[int] = None, cpus: Optional[int] = None,
                     ttl: Optional[int] = None, idle_timeout: Optional[int] = None, network: Optional[str] = None,
                     mounts: Optional[List[str]] = None, image: Optional[str] = None,
                     client: Optional[Client] = None) -> "AsyncSandbox":
        client = client or default_client()
        spec = _ops.sandbox_spec(language, memory_mb, cpus, ttl, idle_timeout, network, mounts, image)
        return cls(await drive_async(call("POST", "/v1/sandboxes", spec), client.aio), client)

    @classmethod
    async def connect(cls, sandbox_id: str, client: Optional[Client] = None) -> "AsyncSandbox":
        client = client or default_client()
        return cls(await drive_async(call("GET", _ops.sandbox_path(sandbox_id)), client.aio), client)

    @classmethod
    async def restore(cls, snapshot: str, client: Optional[Client] = None) -> "AsyncSandbox":
        client = client or default_client()
        return cls(await drive_async(_ops.restore(snapshot), client.aio), client)

    @classmethod
    async def list(cls, client: Optional[Client] = None) -> List[Dict[str, Any]]:
        client = client or default_client()
        return await drive_async(_ops.list_sandboxes(), client.aio)

    async def info(self) -> Dict[str, Any]:
        return await self._call("GET", self._path)

    async def touch(self) -> None:
        await self._drive(_ops.touch(self.id))

    async def forward_port(self, port: int) -> Dict[str, Any]:
        return await self._drive(_ops.forward_port(self.id, port))

    async def ports(self) -> List[Dict[str, Any]]:
        return await self._drive(_ops.list_ports(self.id))

    async def close_port(self, port: int) -> None:
        await self._drive(_ops.close_port(self.id, port))

    async def run_code(self, code: str, *, context: str = "default", language: Optional[str] = None,
                       timeout: Optional[int] = None) -> Execution:
        return await self._drive(_ops.run_code(self.id, code, context, language, timeout))

    async def snapshot(self, name: Optional[str] = None, labels: Optional[Dict[str, str]] = None) -> SnapshotInfo:
        return await self._drive(_ops.snapshot(self.id, name, labels))

    async def fork(self, count: int) -> List[Union["AsyncSandbox", SandboxError]]:
        return [copy if isinstance(copy, SandboxError) else AsyncSandbox(copy, self._client)
                for copy in await self._drive(_ops.fork(self.id, count))]

    async def pause(self) -> None:
        await self._call("POST", f"{self._path}/pause")

    async def resume(self) -> None:
        await self._call("POST", f"{self._path}/resume")

    async def kill(self) -> None:
        await self._drive(_ops.destroy(self.id))

    close = kill

    async def __aenter__(self) -> "AsyncSandbox":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.kill()
