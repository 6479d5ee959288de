#!/usr/bin/env python3
"""Parse untrusted uploads in microVMs, from a read-only mount.

The uploads directory is mounted read-only into each VM (fs="ro:..."): the
parser can read the files but not change them, has no network, and has
256 MiB and 30 s (generous: under emulation on a busy host a memory bomb
takes seconds to fill 256 MiB before the OOM killer ends it). A file built
to exhaust the parser (a "billion laughs" nesting, a huge allocation) ends
its own VM, not the host's process.

airlockd must allow the directory: start it with --mount-root DIR (a parent
of the uploads directory), or let the SDK start one and pass --mount-root
yourself. Usage:

    .venv/bin/python examples/parse_untrusted.py UPLOADS_DIR
"""
import json
import os
import sys

from airlock import sandboxed


def parse(name: str) -> dict:
    """Runs in the VM: /uploads is the host's directory, read-only."""
    path = os.path.join("/uploads", name)
    with open(path, "rb") as file:
        data = file.read()
    if name.endswith(".json"):
        document = json.loads(data)
        return {"file": name, "kind": "json", "keys": sorted(document) if isinstance(document, dict) else None}
    if name.endswith(".csv"):
        rows = [line.split(",") for line in data.decode("utf-8").splitlines()]
        return {"file": name, "kind": "csv", "rows": len(rows) - 1, "columns": rows[0]}
    if name.endswith(".bomb"):
        # What a malicious file may drive a naive parser to: unbounded memory.
        parts = [data * 1024]
        while True:
            parts.append(parts[-1] * 2)
    try:
        open(path, "ab").write(b"tampered")
    except OSError as error:
        return {"file": name, "kind": "unknown", "write_refused": error.strerror}
    return {"file": name, "kind": "unknown", "write_refused": None}


def write_samples(directory: str) -> None:
    samples = {"order.json": b'{"id": 7, "items": [1, 2], "customer": "ann"}',
               "table.csv": b"a,b,c\n1,2,3\n4,5,6\n",
               "broken.json": b'{"id": 7, "items": [1, 2',
               "huge.bomb": b"x" * 4096,
               "notes.txt": b"plain text"}
    for name, data in samples.items():
        with open(os.path.join(directory, name), "wb") as file:
            file.write(data)
        os.chmod(os.path.join(directory, name), 0o644)


def main() -> None:
    uploads = os.path.abspath(sys.argv[1])
    write_samples(uploads)
    parser = sandboxed(parse, fs=f"ro:{uploads}:/uploads", net=False, memory_mb=256, timeout=30)
    names = sorted(os.listdir(uploads))
    for name, result in zip(names, parser.map(names, return_exceptions=True)):
        print(f"{name:12} {type(result).__name__ + ': ' + str(result) if isinstance(result, BaseException) else result}")


if __name__ == "__main__":
    main()
