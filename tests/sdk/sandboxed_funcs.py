"""Module-level functions the decorator tests run in VMs (test_decorator.py).
The VM imports this file by name from its shipped source."""
import os
import sys
import time

# Names of the SDK beyond sandboxed import in the VM too (and fail only if used).
from airlock import RemoteError, sandboxed  # noqa: F401

RAN_AS_MAIN = []


class ParseFailure(Exception):
    pass


@sandboxed(timeout=20)
def describe(data: str, *, scale: int = 1) -> dict:
    print("printed in the VM")
    return {"length": len(data) * scale, "uid": os.getuid(), "module": __name__,
            "hostname": os.uname().nodename, "pair": (1, 2), "keys": {1: "one"}}


@sandboxed(timeout=20)
def fail_builtin(value: str) -> None:
    raise ValueError(f"bad value {value!r}")


@sandboxed(timeout=20)
def fail_custom(value: str) -> None:
    raise ParseFailure("cannot parse " + value)


@sandboxed(timeout=20)
def parse_int(text: str) -> int:
    return int(text)


@sandboxed(timeout=20)
def needs_missing_module() -> None:
    import module_the_image_lacks  # noqa: F401


@sandboxed(timeout=20, modules=["shipped_pkg"])
def use_package(x: int) -> int:
    import shipped_pkg
    from shipped_pkg.sub import helper
    return helper.triple(x) + shipped_pkg.BASE


@sandboxed(timeout=20)
def sleep_for(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


@sandboxed(timeout=2)
def spin_forever() -> None:
    while True:
        pass


@sandboxed(timeout=20)
def returns_a_set() -> set:
    return {1, 2}


@sandboxed(timeout=20, serializer="pickle")
def pickled(values: set) -> frozenset:
    return frozenset(v * 2 for v in values)


@sandboxed(timeout=20)
async def coroutine(x: int) -> int:
    return x + 1


@sandboxed(timeout=20, net=["example.com"], memory_mb=320)
def own_profile() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)


@sandboxed(timeout=20)
def read_mounted(path: str) -> str:
    with open(path) as file:
        return file.read()


@sandboxed(timeout=20)
def exits_early() -> None:
    os._exit(7)


if __name__ == "__main__":
    RAN_AS_MAIN.append(True)
    sys.exit("the VM ran this module's main block")


@sandboxed(image="python-data", timeout=120, pool_size=1)
def column_sums(rows: list) -> dict:
    import pandas as pd
    sums = pd.DataFrame(rows).groupby("k")["v"].sum()
    return {key: int(value) for key, value in sums.items()}
