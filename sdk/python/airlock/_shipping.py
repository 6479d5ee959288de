"""What a @sandboxed call ships to the VM: the source of the function's module,
the packages above it, and the modules the caller names, as {dotted name:
{"source", "file", "package", "code"}} for _guest_call.py's importer ("code":
compiled here, see with_bytecode)."""
from __future__ import annotations

import base64
import importlib.util
import inspect
import marshal
import os
import sys
import types
from typing import Dict, Iterable, Optional, Union

Shipment = Dict[str, Dict[str, object]]

# airlockd takes request bodies up to 2 MiB, and the call's arguments (JSON in
# JSON, so escaped twice) need room beside the sources.
MAX_SOURCE_BYTES = 1024 * 1024

# A function defined in the script being run lives in __main__; shipped under
# this name (as multiprocessing does), the script's `if __name__ ==
# "__main__"` block does not run in the VM.
MAIN_ALIAS = "__mp_main__"


def _source_of(module: types.ModuleType) -> str:
    path = getattr(module, "__file__", None)
    if not path or not path.endswith(".py"):
        raise TypeError(f"module {module.__name__!r} has no Python source file to ship "
                        f"({path or 'it was not loaded from a file'}); a @sandboxed function must live in a .py file")
    try:
        with open(path, "rb") as source:
            return source.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TypeError(f"cannot read the source of module {module.__name__!r} from {path}: {error}") from None


def _add(shipment: Shipment, name: str, module: types.ModuleType) -> None:
    if name in shipment:
        return
    package = hasattr(module, "__path__")
    if package and not getattr(module, "__file__", None):
        # A namespace package: nothing to run, but its children need it.
        shipment[name] = {"source": "", "file": f"<namespace {name}>", "package": True}
        return
    shipment[name] = {"source": _source_of(module), "file": module.__file__, "package": package}


def _add_parents(shipment: Shipment, name: str) -> None:
    parts = name.split(".")
    for depth in range(1, len(parts)):
        parent = ".".join(parts[:depth])
        module = sys.modules.get(parent)
        if module is None:
            raise TypeError(f"package {parent!r} of module {name!r} is not imported here")
        _add(shipment, parent, module)


def _add_package_tree(shipment: Shipment, package: types.ModuleType) -> None:
    """Every .py file under a package, as the dotted names an import would use."""
    for root in list(package.__path__):
        for directory, subdirectories, files in os.walk(root):
            subdirectories[:] = sorted(d for d in subdirectories if d.isidentifier())
            relative = os.path.relpath(directory, root)
            prefix = package.__name__ if relative == "." else package.__name__ + "." + relative.replace(os.sep, ".")
            for file in sorted(files):
                if not file.endswith(".py") or not file[:-3].isidentifier():
                    continue
                path = os.path.join(directory, file)
                name = prefix if file == "__init__.py" else f"{prefix}.{file[:-3]}"
                if name in shipment:
                    continue
                with open(path, "rb") as source:
                    text = source.read().decode("utf-8", "replace")
                shipment[name] = {"source": text, "file": path, "package": file == "__init__.py"}
            if relative != "." and prefix not in shipment:
                shipment[prefix] = {"source": "", "file": f"<namespace {prefix}>", "package": True}


def shipment_for(function_module: types.ModuleType, extra: Iterable[Union[str, types.ModuleType]]) -> Shipment:
    shipment: Shipment = {}
    name = function_module.__name__
    if name == "__main__":
        _add(shipment, MAIN_ALIAS, function_module)
    else:
        _add_parents(shipment, name)
        _add(shipment, name, function_module)
    for item in extra:
        module = sys.modules.get(item) if isinstance(item, str) else item
        if isinstance(item, str) and module is None:
            import importlib
            module = importlib.import_module(item)
        if not isinstance(module, types.ModuleType):
            raise TypeError(f"modules= takes modules or their names, not {type(item).__name__}")
        _add_parents(shipment, module.__name__)
        if hasattr(module, "__path__"):
            _add_package_tree(shipment, module)
        else:
            _add(shipment, module.__name__, module)
    size = sum(len(str(entry["source"]).encode("utf-8")) for entry in shipment.values())
    if size > MAX_SOURCE_BYTES:
        raise ValueError(f"the modules shipped with this function hold {size} bytes of source, more than "
                         f"{MAX_SOURCE_BYTES}; ship fewer (modules=...), or upload data as files")
    return shipment


# The bytecode version of this interpreter: the VM uses shipped bytecode only
# when its own is the same.
MAGIC = importlib.util.MAGIC_NUMBER.hex()


def compiled(source: str, filename: str) -> Optional[str]:
    """base64 of the marshalled code of `source`, or None when it does not
    compile here (the VM compiles it then, and raises its SyntaxError)."""
    try:
        code = compile(source, filename, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return None
    return base64.b64encode(marshal.dumps(code)).decode("ascii")


def with_bytecode(shipment: Shipment) -> Shipment:
    """The shipment with each module's compiled code beside its source."""
    return {name: {**entry, "code": compiled(str(entry["source"]), str(entry["file"]))} if entry["source"] else entry
            for name, entry in shipment.items()}


def module_name_in_vm(function_module: types.ModuleType) -> str:
    return MAIN_ALIAS if function_module.__name__ == "__main__" else function_module.__name__


def refuse_unshippable(function: object) -> None:
    """Only what the VM can import by name: a module-level function."""
    if not inspect.isfunction(function) and not inspect.iscoroutinefunction(function):
        raise TypeError(f"@sandboxed takes a function defined with def, not {type(function).__name__}")
    name = function.__name__
    qualname = function.__qualname__
    if name == "<lambda>":
        raise TypeError("@sandboxed cannot take a lambda: the VM imports the function by name from its module; "
                        "define it with def at module level")
    parts = qualname.split(".")
    if len(parts) > 1 and parts[-2] != "<locals>":
        raise TypeError(f"@sandboxed cannot take {qualname}: it is a method (defined in a class body), and the VM "
                        "can only import module-level functions; make it a module-level function taking the "
                        "values it needs")
    if "<locals>" in qualname or function.__closure__:
        raise TypeError(f"@sandboxed cannot take {qualname}: it is defined inside another function (a closure or "
                        "nested function), and the VM can only import module-level functions; move it to module level")
