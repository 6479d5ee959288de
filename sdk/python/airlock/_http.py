"""HTTP to airlockd, without I/O in the core: a Request, a Response, and two
transports that carry them (blocking sockets, asyncio streams). The API's
operations (_ops.py) are written once over these objects."""
from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Dict, Iterator, Optional

from .errors import OutcomeUnknown, SandboxError, Timeout, Transient, error_from


@dataclass
class Request:
    method: str
    path: str
    body: bytes = b""
    content_type: str = "application/json"
    # Answered as NDJSON events, read as they come.
    stream: bool = False
    timeout: Optional[float] = None
    # Lets another thread hang up on the request (airlockd cancels a run whose caller hangs up).
    cancel: Optional["CancelScope"] = None


class CancelScope:
    """Hangs up a blocking request from another thread: cancel() shuts its
    socket down, at once or as soon as it is connected."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socket: Optional[socket.socket] = None
        self.cancelled = False

    def attach(self, connection: socket.socket) -> None:
        with self._lock:
            self._socket = connection
            if self.cancelled:
                self._hang_up()

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            self._hang_up()

    def _hang_up(self) -> None:
        if self._socket is not None:
            try:
                self._socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: Dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        try:
            return json.loads(self.body.decode("utf-8"))
        except ValueError as error:
            raise SandboxError(f"airlockd answered HTTP {self.status} with something not JSON: {error}") from None


def json_request(method: str, path: str, document: Any = None, **options: Any) -> Request:
    body = b"" if document is None else json.dumps(document).encode("utf-8")
    return Request(method, path, body, **options)


@dataclass
class Endpoint:
    """Where airlockd listens: a Unix socket, or TCP with a bearer token."""

    socket_path: Optional[str] = None
    host: Optional[str] = None
    port: int = 0
    token: Optional[str] = None

    @staticmethod
    def from_environment(socket_path: Optional[str] = None, url: Optional[str] = None,
                         token: Optional[str] = None) -> "Endpoint":
        url = url or os.environ.get("AIRLOCK_URL")
        if url:
            parsed = urllib.parse.urlsplit(url)
            if parsed.scheme != "http" or not parsed.hostname:
                raise SandboxError(f"AIRLOCK_URL must be http://host:port, not {url!r}")
            return Endpoint(host=parsed.hostname, port=parsed.port or 80,
                            token=token or os.environ.get("AIRLOCK_TOKEN"))
        return Endpoint(socket_path=socket_path or os.environ.get("AIRLOCK_SOCKET") or default_socket_path())

    def describe(self) -> str:
        return self.socket_path if self.socket_path else f"http://{self.host}:{self.port}"


def default_socket_path() -> str:
    """As the CLI finds it: <runtime dir>/airlockd.sock."""
    runtime = os.environ.get("AIRLOCK_RUNTIME_DIR")
    if not runtime:
        xdg = os.environ.get("XDG_RUNTIME_DIR")
        runtime = os.path.join(xdg, "airlock") if xdg else f"/tmp/airlock-{os.getuid()}"
    return os.path.join(runtime, "airlockd.sock")


def _headers(endpoint: Endpoint, request: Request) -> Dict[str, str]:
    # One connection per request: nothing is left open between calls.
    headers = {"Host": "airlockd", "Accept": "application/x-ndjson" if request.stream else "application/json",
               "Content-Type": request.content_type, "Content-Length": str(len(request.body)),
               "Connection": "close"}
    if endpoint.token:
        headers["Authorization"] = f"Bearer {endpoint.token}"
    return headers


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: Optional[float]) -> None:
        super().__init__("airlockd", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class SyncTransport:
    """One connection per request (airlockd serves each on a thread of its own)."""

    def __init__(self, endpoint: Endpoint, timeout: float = 300.0) -> None:
        self.endpoint = endpoint
        self.timeout = timeout

    def _open(self, request: Request) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        timeout = request.timeout or self.timeout
        connection: http.client.HTTPConnection
        if self.endpoint.socket_path:
            connection = _UnixConnection(self.endpoint.socket_path, timeout)
        else:
            connection = http.client.HTTPConnection(self.endpoint.host or "", self.endpoint.port, timeout=timeout)
        try:
            connection.connect()
        except OSError as error:
            connection.close()
            raise Transient(f"airlockd does not answer on {self.endpoint.describe()}: {error}") from None
        if request.cancel is not None and connection.sock is not None:
            request.cancel.attach(connection.sock)
        try:
            connection.request(request.method, request.path, body=request.body, headers=_headers(self.endpoint, request))
            return connection, connection.getresponse()
        except socket.timeout:
            connection.close()
            # Sent, and not answered: it may be running still.
            raise Timeout(f"airlockd did not answer {request.method} {request.path} in {timeout} s; "
                                 "it may have run") from None
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise OutcomeUnknown(f"the connection to airlockd broke during {request.method} {request.path}: "
                                 f"{error}; it may have run") from None

    def send(self, request: Request) -> Response:
        connection, answer = self._open(request)
        try:
            body = answer.read()
        except (OSError, http.client.HTTPException) as error:
            raise OutcomeUnknown(f"the answer to {request.method} {request.path} broke off: {error}") from None
        finally:
            connection.close()
        return Response(answer.status, body, {k.lower(): v for k, v in answer.getheaders()})

    def stream(self, request: Request) -> Iterator[Dict[str, Any]]:
        """The NDJSON events of a streamed answer, as they come; an error answer raises."""
        connection, answer = self._open(request)
        try:
            if answer.status != 200:
                raise error_from(answer.status, Response(answer.status, answer.read()).json())
            while True:
                line = answer.readline()
                if not line:
                    return
                if line.strip():
                    yield json.loads(line)
        except (OSError, http.client.HTTPException, ValueError) as error:
            raise OutcomeUnknown(f"the events of {request.path} broke off: {error}") from None
        finally:
            connection.close()


class AsyncTransport:
    """The same over asyncio streams: a small HTTP/1.1 client (Content-Length or chunked)."""

    def __init__(self, endpoint: Endpoint, timeout: float = 300.0) -> None:
        self.endpoint = endpoint
        self.timeout = timeout

    async def _open(self, request: Request) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int, Dict[str, str]]:
        timeout = request.timeout or self.timeout
        try:
            return await asyncio.wait_for(self._connect(request), timeout)
        except asyncio.TimeoutError:
            raise Timeout(f"airlockd did not answer {request.method} {request.path} in {timeout} s; "
                                 "it may have run") from None

    async def _connect(self, request: Request) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int, Dict[str, str]]:
        try:
            if self.endpoint.socket_path:
                reader, writer = await asyncio.open_unix_connection(self.endpoint.socket_path, limit=1 << 26)
            else:
                reader, writer = await asyncio.open_connection(self.endpoint.host, self.endpoint.port, limit=1 << 26)
        except OSError as error:
            raise Transient(f"airlockd does not answer on {self.endpoint.describe()}: {error}") from None
        headers = _headers(self.endpoint, request)
        headers["Connection"] = "close"
        head = f"{request.method} {request.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        try:
            writer.write(head.encode("latin-1") + b"\r\n" + request.body)
            await writer.drain()
            status_line = await reader.readline()
            parts = status_line.decode("latin-1").split(" ", 2)
            if len(parts) < 2 or not parts[1].isdigit():
                raise OutcomeUnknown(f"airlockd answered {request.path} with {status_line[:80]!r}")
            answer_headers: Dict[str, str] = {}
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                answer_headers[name.strip().lower()] = value.strip()
            return reader, writer, int(parts[1]), answer_headers
        except BaseException as error:
            writer.close()
            if not isinstance(error, OSError):
                raise
            raise OutcomeUnknown(f"the connection to airlockd broke during {request.method} {request.path}: "
                                 f"{error}; it may have run") from None

    @staticmethod
    async def _pieces(reader: asyncio.StreamReader, headers: Dict[str, str]) -> AsyncIterator[bytes]:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size_line = await reader.readline()
                if not size_line.endswith(b"\n"):
                    # The last chunk never came: the answer broke off, it did not end.
                    raise OutcomeUnknown("the answer broke off before its end")
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    await reader.readline()
                    return
                yield await reader.readexactly(size)
                if await reader.readline() != b"\r\n":
                    raise OutcomeUnknown("a chunk of the answer was not followed by its CRLF")
        elif "content-length" in headers:
            yield await reader.readexactly(int(headers["content-length"]))
        else:
            yield await reader.read()

    async def send(self, request: Request) -> Response:
        reader, writer, status, headers = await self._open(request)
        timeout = request.timeout or self.timeout
        try:
            body = b"".join(await asyncio.wait_for(self._collect(reader, headers), timeout))
        except asyncio.TimeoutError:
            raise Timeout(f"the answer to {request.method} {request.path} took over {timeout} s") from None
        except (OSError, asyncio.IncompleteReadError, ValueError) as error:
            raise OutcomeUnknown(f"the answer to {request.method} {request.path} broke off: {error}") from None
        finally:
            writer.close()
        return Response(status, body, headers)

    async def _collect(self, reader: asyncio.StreamReader, headers: Dict[str, str]) -> list[bytes]:
        return [piece async for piece in self._pieces(reader, headers)]

    async def stream(self, request: Request) -> AsyncIterator[Dict[str, Any]]:
        reader, writer, status, headers = await self._open(request)
        try:
            if status != 200:
                body = b"".join([piece async for piece in self._pieces(reader, headers)])
                raise error_from(status, Response(status, body).json())
            pending = b""
            async for piece in self._pieces(reader, headers):
                pending += piece
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        except (OSError, asyncio.IncompleteReadError, ValueError) as error:
            raise OutcomeUnknown(f"the events of {request.path} broke off: {error}") from None
        finally:
            writer.close()
