"""The SDK's transports against servers that misbehave (no airlockd, no VMs)."""
import asyncio
import socket
import threading

import pytest

from airlock import OutcomeUnknown, Timeout
from airlock._http import AsyncTransport, Endpoint, Request, SyncTransport


def serve_once(path, answer):
    """A Unix socket that reads one request and says `answer` (then closes), or nothing if None."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def run():
        connection, _ = server.accept()
        connection.recv(65536)
        if answer is None:
            threading.Event().wait(5)
        else:
            connection.sendall(answer)
        connection.close()
        server.close()

    threading.Thread(target=run, daemon=True).start()


def test_an_answer_that_never_comes_is_a_timeout_not_a_retry(tmp_path):
    path = str(tmp_path / "silent.sock")
    serve_once(path, None)
    with pytest.raises(Timeout) as error:
        SyncTransport(Endpoint(socket_path=path)).send(Request("POST", "/v1/run", b"{}", timeout=0.5))
    assert isinstance(error.value, OutcomeUnknown) and not error.value.retryable


def test_a_chunked_answer_cut_off_before_its_last_chunk_is_not_taken_as_whole(tmp_path):
    path = str(tmp_path / "cut.sock")
    serve_once(path, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
    with pytest.raises(OutcomeUnknown):
        asyncio.run(AsyncTransport(Endpoint(socket_path=path)).send(Request("GET", "/v1/sandboxes/x/files")))


def test_a_stream_of_garbage_is_an_sdk_error(tmp_path):
    path = str(tmp_path / "garbage.sock")
    serve_once(path, b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnot json\n")
    with pytest.raises(OutcomeUnknown):
        list(SyncTransport(Endpoint(socket_path=path)).stream(Request("POST", "/v1/run", stream=True)))
