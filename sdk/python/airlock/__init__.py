"""Airlock's Python SDK: a client of airlockd's HTTP API (docs/sdk.md).

    from airlock import run, Sandbox
    run("print(6*7)").stdout                      # '42\\n'
    with Sandbox.create(language="python") as sb:
        sb.files.write("/home/sandbox/x", b"1")
        sb.commands.run("cat x").stdout           # '1'
        sb.run_code("1 + 1").text                 # '2'

    @sandboxed(net=False, timeout=10)
    def parse(data: str) -> dict: ...             # each call in a microVM of its own
"""
from ._client import Client
from ._ops import Execution, ExecutionError, RunResult, SnapshotInfo
from .decorator import RemoteError, RemoteTraceback, Sandboxed, SpawnHandle, sandboxed
from .errors import (AuthError, Capacity, Conflict, InvalidArgument, NotFound, OutcomeUnknown, SandboxError, Timeout,
                     Transient)
from .sandbox import (AsyncCommandHandle, AsyncSandbox, CommandHandle, Sandbox, adelete_snapshot, alist_images,
                      alist_snapshots, arun, delete_snapshot, list_images, list_snapshots, run)

__all__ = ["run", "arun", "list_images", "alist_images", "list_snapshots", "delete_snapshot", "alist_snapshots", "adelete_snapshot", "sandboxed", "Sandboxed", "SpawnHandle", "RemoteError", "RemoteTraceback", "Sandbox",
           "AsyncSandbox", "CommandHandle", "AsyncCommandHandle", "Client", "RunResult", "Execution", "ExecutionError", "SnapshotInfo", "SandboxError", "InvalidArgument", "NotFound", "Conflict", "Capacity",
           "Transient", "AuthError", "Timeout", "OutcomeUnknown"]
