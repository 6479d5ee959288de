"""@sandboxed: a module-level function that runs in a fresh microVM per call,
from a warm pool of its own capability profile (docs/sdk.md, "The decorator").

Each call is one POST /v1/run: the code is _BOOTSTRAP (the same lines every
time), stdin carries _guest_call.py compiled, the function's module (source
and bytecode) and its arguments, and the answer comes back on stdout after a
nonce. The VM is destroyed afterwards."""
from __future__ import annotations

import base64
import builtins
import concurrent.futures
import functools
import importlib.resources
import json
import pickle
import secrets
import sys
import threading
import types
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from . import _ops, _shipping
from ._client import Client, default_client
from ._http import CancelScope, Request, json_request
from ._ops import drive, drive_async
from .errors import InvalidArgument, SandboxError, Timeout

_GUEST_CALL = importlib.resources.files(__package__).joinpath("_guest_call.py").read_text("utf-8")
# _guest_call.py as the VM gets it on stdin: compiled here once (compiling it
# in the VM costs ~60 ms under emulation), with its text for a VM whose
# Python has another bytecode version.
_RUNNER = {"magic": _shipping.MAGIC, "code": _shipping.compiled(_GUEST_CALL, "<airlock call>"), "source": _GUEST_CALL}
# The run's code: the same few lines every call, cheap to compile.
_BOOTSTRAP = """\
import binascii, json, marshal, sys
from _frozen_importlib_external import MAGIC_NUMBER
CALL = json.loads(sys.stdin.buffer.read())
runner = CALL.pop("runner")
if runner["magic"] == MAGIC_NUMBER.hex():
    code = marshal.loads(binascii.a2b_base64(runner["code"]))
else:
    code = compile(runner["source"], "<airlock call>", "exec")
exec(code, {"__name__": "_airlock_call", "CALL": CALL})
"""

# What airlockd accepts in one request body (HttpServer::kMaxBodyBytes).
_MAX_REQUEST_BYTES = 2 * 1024 * 1024
# The answer's room on stdout: the function's prints and its JSON result.
_RESULT_LIMIT = 8 * 1024 * 1024


class RemoteError(Exception):
    """An exception of a type that is not a builtin, raised by the function in
    its VM: its type's name, message, and the VM's traceback."""

    def __init__(self, type_name: str, message: str, traceback: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.traceback = traceback


class RemoteTraceback(Exception):
    """The cause attached to an exception re-raised from a VM: the traceback as
    the VM printed it."""

    def __init__(self, traceback: str) -> None:
        super().__init__(traceback)
        self.traceback = traceback

    def __str__(self) -> str:
        return "\n\nin the sandbox:\n" + self.traceback


@dataclass(frozen=True)
class Profile:
    """What a call may touch; each distinct profile gets its own warm pool."""

    network: str = "none"
    mounts: Tuple[str, ...] = ()
    memory_mb: Optional[int] = None
    cpus: Optional[int] = None
    image: Optional[str] = None

    @staticmethod
    def of(net: Union[bool, str, Sequence[str], None], fs: Union[str, Sequence[str], None],
           memory_mb: Optional[int], cpus: Optional[int], image: Optional[str] = None) -> "Profile":
        return Profile(network=_network_policy(net), mounts=tuple(_mounts(fs)), memory_mb=memory_mb, cpus=cpus,
                       image=image)

    def fields(self) -> Dict[str, Any]:
        fields: Dict[str, Any] = {"language": "python", "network": self.network, "mounts": list(self.mounts)}
        if self.image is not None:
            fields["image"] = self.image
        if self.memory_mb is not None:
            fields["memory_mb"] = self.memory_mb
        if self.cpus is not None:
            fields["cpus"] = self.cpus
        return fields


def _network_policy(net: Union[bool, str, Sequence[str], None]) -> str:
    if net is None or net is False:
        return "none"
    if net is True:
        return "full"
    if isinstance(net, str):
        return net if net in ("none", "full") or net.startswith("allow:") else "allow:" + net
    names = list(net)
    if not names or not all(isinstance(name, str) and name for name in names):
        raise ValueError(f"net= takes False, True, or a list of domain names, not {net!r}")
    return "allow:" + ",".join(names)


def _mounts(fs: Union[str, Sequence[str], None]) -> List[str]:
    if fs is None:
        return []
    mounts = []
    for item in [fs] if isinstance(fs, str) else list(fs):
        kind, _, rest = str(item).partition(":")
        if kind != "ro" or not rest:
            raise ValueError(f"fs= takes 'ro:/host/dir[:/guest/dir]' (mounts are read-only), not {item!r}")
        host, _, guest = rest.partition(":")
        mounts.append(f"ro:{host}:{guest or host}")
    return mounts


class Sandboxed:
    """A @sandboxed function: call it, or .local / .map / .spawn / .aio."""

    def __init__(self, function: Callable[..., Any], profile: Profile, *, timeout: Optional[int],
                 env: Optional[Dict[str, str]], modules: Sequence[Union[str, types.ModuleType]], serializer: str,
                 pool_size: int, client: Optional[Client], max_parallel: int) -> None:
        _shipping.refuse_unshippable(function)
        functools.update_wrapper(self, function)
        self.function = function
        self.profile = profile
        self.timeout = timeout
        self.env = dict(env or {})
        self.modules = list(modules)
        self.serializer = serializer
        self.pool_size = pool_size
        self.max_parallel = max_parallel
        self._client = client
        self._shipment: Optional[Tuple[_shipping.Shipment, _shipping.Shipment]] = None
        self._lock = threading.Lock()

    # --- the ways to call it ---------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        client = self._client or default_client()
        return self._outcome(drive(self._call(client, args, kwargs, None), client.sync))

    def local(self, *args: Any, **kwargs: Any) -> Any:
        """The function itself, in this process (for tests)."""
        return self.function(*args, **kwargs)

    async def aio(self, *args: Any, **kwargs: Any) -> Any:
        client = self._client or default_client()
        # A cancelled task closes its connection, and airlockd cancels the run.
        return self._outcome(await drive_async(self._call(client, args, kwargs, None), client.aio))

    def spawn(self, *args: Any, **kwargs: Any) -> "SpawnHandle":
        return SpawnHandle(self, args, kwargs)

    def map(self, *iterables: Iterable[Any], return_exceptions: bool = False,
            max_parallel: Optional[int] = None) -> List[Any]:
        """One call per item (per tuple of items, as builtin map), several VMs
        at once; results in order. With return_exceptions, a failed item's
        exception takes its place instead of being raised."""
        items = list(zip(*iterables))
        if not items:
            return []
        workers = max(1, min(len(items), max_parallel or self.max_parallel))
        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="airlock-map") as pool:
            futures = [pool.submit(self, *item) for item in items]
            results: List[Any] = []
            for future in futures:
                try:
                    results.append(future.result())
                except Exception as error:
                    if not return_exceptions:
                        for pending in futures:
                            pending.cancel()
                        raise
                    results.append(error)
            return results

    # --- one call ----------------------------------------------------------------

    def _call(self, client: Client, args: Tuple[Any, ...], kwargs: Dict[str, Any],
              cancel: Optional[CancelScope]) -> _ops.Op:
        yield from self._ensure_pool(client)
        mark = "\x1eairlock-result-" + secrets.token_hex(16) + ":"
        arguments = self._encode(args, kwargs)
        compiled, plain = self._ship()
        for modules in (compiled, plain):  # bytecode if it fits, else the VM compiles
            call = {"modules": modules, "module": _shipping.module_name_in_vm(sys.modules[self.function.__module__]),
                    "function": self.function.__qualname__, "serializer": self.serializer, "arguments": arguments,
                    "mark": mark, "magic": _shipping.MAGIC, "runner": _RUNNER}
            spec: Dict[str, Any] = {**self.profile.fields(), "code": _BOOTSTRAP, "stdin": json.dumps(call),
                                    "stdout_limit": _RESULT_LIMIT}
            if self.timeout is not None:
                spec["timeout_s"] = self.timeout
            if self.env:
                spec["env"] = self.env
            request = json_request("POST", "/v1/run", spec, timeout=_ops.margin(self.timeout or 30), cancel=cancel)
            if len(request.body) <= _MAX_REQUEST_BYTES:
                break
        if len(request.body) > _MAX_REQUEST_BYTES:
            raise InvalidArgument(f"this call of {self.__name__}() comes to {len(request.body)} bytes (its modules' "
                                  f"source and its arguments), over airlockd's {_MAX_REQUEST_BYTES}-byte request "
                                  "limit; pass large data as files (fs='ro:...') instead")
        response = yield request
        if response.status != 200:
            raise _ops.error_from(response.status, _ops._json_or_none(response))
        result = _ops.RunResult.of(response.json())
        return result, mark

    def _ensure_pool(self, client: Client) -> _ops.Op:
        """A warm pool for this profile, made on its first call. Only the
        daemon's operator may make pools: for others (403), or past the
        daemon's pool limit, calls start their own VMs."""
        if self.pool_size <= 0:
            return
        made = client.__dict__.setdefault("_sandboxed_pools", set())
        if self.profile in made:
            return
        made.add(self.profile)
        yield json_request("POST", "/v1/pools", {**self.profile.fields(), "target": self.pool_size}, timeout=30)

    def _ship(self) -> Tuple[_shipping.Shipment, _shipping.Shipment]:
        """What the VM imports: with bytecode, and without."""
        with self._lock:
            if self._shipment is None:
                module = sys.modules[self.function.__module__]
                found = getattr(module, self.function.__name__, None)
                if getattr(found, "function", found) is not self.function:
                    raise TypeError(f"the VM finds {self.__name__} by name in module {module.__name__}, where that "
                                    "name is not this function; decorate it where it is defined, under its own name")
                plain = _shipping.shipment_for(module, self.modules)
                self._shipment = (_shipping.with_bytecode(plain), plain)
            return self._shipment

    def _encode(self, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        if self.serializer == "pickle":
            return base64.b64encode(pickle.dumps((args, kwargs))).decode("ascii")
        try:
            return json.loads(json.dumps([list(args), kwargs]))
        except (TypeError, ValueError) as error:
            raise TypeError(f"the arguments of {self.__name__}() must be JSON ({error}); tuples travel as lists and "
                            "dict keys as strings; serializer='pickle' carries other types") from None

    def _outcome(self, answered: Tuple[_ops.RunResult, str]) -> Any:
        result, mark = answered
        start = result.stdout.rfind("\n" + mark)
        if start < 0:
            raise self._no_answer(result)
        printed, _, rest = result.stdout[start + 1 + len(mark):].partition("\n")
        if result.stdout[:start]:
            sys.stdout.write(result.stdout[:start])
        if result.stderr:
            sys.stderr.write(result.stderr)
        try:
            document = json.loads(printed)
        except ValueError:
            raise SandboxError(f"the answer of {self.__name__}() from its VM is not JSON: {printed[:200]!r}") from None
        if document.get("ok") is True:
            value = document["value"]
            # The caller chose pickle: it unpickles what the VM sent (docs/sdk.md says why that trusts the VM).
            return pickle.loads(base64.b64decode(value)) if self.serializer == "pickle" else value
        raise _reraised(document)

    def _no_answer(self, result: _ops.RunResult) -> BaseException:
        name = self.__name__
        said = result.stderr[-2000:]
        if result.status == "timeout":
            return Timeout(f"{name}() ran past its timeout of {self.timeout or 30} s in the sandbox")
        if result.status == "oom":
            return MemoryError(f"{name}() ran out of the sandbox's memory ({self.profile.memory_mb or 256} MiB)")
        if result.status == "output_limit" or result.raw.get("stdout_truncated"):
            return RemoteError("OutputLimit", f"{name}() printed or returned more than {_RESULT_LIMIT} bytes", said)
        if result.status in ("killed", "internal_error"):
            return SandboxError(f"the sandbox running {name}() was {result.status}: {result.error or said}")
        return RemoteError("SystemExit", f"{name}() ended its process before returning (status {result.status}, "
                           f"exit code {result.exit_code})", said)


def _reraised(document: Dict[str, Any]) -> BaseException:
    """A builtin exception type as itself, with the VM's traceback as its
    cause; any other as RemoteError."""
    name, module, message = document["type"], document["module"], document["message"]
    traceback = document.get("traceback", "")
    kind = getattr(builtins, name, None) if module == "builtins" else None
    if isinstance(kind, type) and issubclass(kind, Exception):
        args = document.get("args")
        try:
            error: BaseException = kind(*args) if isinstance(args, list) else kind(message)
        except Exception:
            error = kind(message)
        error.__cause__ = RemoteTraceback(traceback)
        error.remote_traceback = traceback  # type: ignore[attr-defined]
        return error
    qualified = name if module in ("builtins", "__main__", _shipping.MAIN_ALIAS) else f"{module}.{name}"
    return RemoteError(qualified, message, traceback)


class SpawnHandle:
    """A call running in the background: get(timeout) its value, or cancel()
    it (airlockd stops its VM)."""

    def __init__(self, function: Sandboxed, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
        self._function = function
        self._scope = CancelScope()
        self._done = threading.Event()
        self._value: Any = None
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._work, args=(args, kwargs), daemon=True,
                                        name=f"airlock-spawn-{function.__name__}")
        self._thread.start()

    def _work(self, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
        try:
            client = self._function._client or default_client()
            answered = drive(self._function._call(client, args, kwargs, self._scope), client.sync)
            self._value = self._function._outcome(answered)
        except BaseException as error:
            self._error = concurrent.futures.CancelledError() if self._scope.cancelled else error
        finally:
            self._done.set()

    def done(self) -> bool:
        return self._done.is_set()

    def get(self, timeout: Optional[float] = None) -> Any:
        if not self._done.wait(timeout):
            raise TimeoutError(f"{self._function.__name__}() has not returned after {timeout} s (it goes on)")
        if self._error is not None:
            raise self._error
        return self._value

    def cancel(self) -> bool:
        """True when the call was stopped; False when it had already ended."""
        if self._done.is_set():
            return False
        self._scope.cancel()
        self._done.wait()
        return isinstance(self._error, concurrent.futures.CancelledError)


def sandboxed(function: Optional[Callable[..., Any]] = None, *, net: Union[bool, str, Sequence[str], None] = False,
              fs: Union[str, Sequence[str], None] = None, timeout: Optional[int] = 30,
              memory_mb: Optional[int] = None, cpus: Optional[int] = None, env: Optional[Dict[str, str]] = None,
              image: Optional[str] = None, modules: Sequence[Union[str, types.ModuleType]] = (), serializer: str = "json",
              packages: Optional[Sequence[str]] = None, pool_size: int = 2, client: Optional[Client] = None,
              max_parallel: int = 4) -> Any:
    """Runs a module-level function in a microVM of its own per call.

    net: False (no network), True (full; the daemon must allow it), or domain
    names the VM may reach. fs: "ro:/host[:/guest]" or a list of them (under
    airlockd's --mount-root). image: a python image other than the default,
    e.g. "python-data" (numpy, pandas, ... imported in its template). Arguments and the result travel as JSON unless
    serializer="pickle" (which trusts the VM: see docs/sdk.md)."""
    if packages:
        raise ValueError("packages= needs package layers (the images issue), which airlockd does not offer yet; "
                         "use what the python image has, or ship pure-Python code with modules=[...]")
    if serializer not in ("json", "pickle"):
        raise ValueError(f"serializer= is 'json' or 'pickle', not {serializer!r}")
    profile = Profile.of(net, fs, memory_mb, cpus, image)

    def decorate(target: Callable[..., Any]) -> Sandboxed:
        return Sandboxed(target, profile, timeout=timeout, env=env, modules=modules, serializer=serializer,
                         pool_size=pool_size, client=client, max_parallel=max_parallel)

    return decorate(function) if function is not None else decorate
