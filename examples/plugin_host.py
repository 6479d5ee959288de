#!/usr/bin/env python3
"""A plugin host: third-party functions run with @sandboxed, each call in a
microVM of its own, so a plugin that misbehaves (crashes, hangs, reads
files, calls home) costs one VM and reaches nothing of the host.

Each plugin declares its capability profile; the host calls them on its
documents with .map (several VMs at once, results in order) and reports the
ones that failed without stopping the rest.

    .venv/bin/python examples/plugin_host.py
"""
import os

from airlock import RemoteError, Timeout, sandboxed


@sandboxed(net=False, timeout=10, memory_mb=256)
def word_count(document: str) -> dict:
    return {"words": len(document.split())}


@sandboxed(net=False, timeout=10, memory_mb=256)
def shouting(document: str) -> dict:
    letters = [c for c in document if c.isalpha()]
    return {"upper_ratio": round(sum(c.isupper() for c in letters) / max(1, len(letters)), 2)}


@sandboxed(net=False, timeout=10, memory_mb=256)
def nosy(document: str) -> dict:
    """A hostile plugin: looks for the host's secrets and its network."""
    found = {"host_home_visible": os.path.exists(os.path.expanduser("~root/.ssh")),
             "hostname": os.uname().nodename}
    import socket
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=2)
        found["network"] = "reachable"
    except OSError as error:
        found["network"] = f"unreachable ({error.__class__.__name__})"
    return found


@sandboxed(net=False, timeout=3, memory_mb=256)
def buggy(document: str) -> dict:
    if "dog" in document.lower():
        raise KeyError("dog")
    while True:  # and hangs on the rest
        pass


PLUGINS = [word_count, shouting, nosy, buggy]
DOCUMENTS = ["The cat sat", "THE DOG BARKED at the cat"]


def main() -> None:
    for plugin in PLUGINS:
        results = plugin.map(DOCUMENTS, return_exceptions=True)
        for document, result in zip(DOCUMENTS, results):
            if isinstance(result, Timeout):
                shown = "timed out (its VM was destroyed)"
            elif isinstance(result, (RemoteError, Exception)):
                shown = f"failed: {type(result).__name__}: {result}"
            else:
                shown = result
            print(f"{plugin.__name__:10} {document!r:28} {shown}")


if __name__ == "__main__":
    main()
