"""Runs inside the microVM: one call of a @sandboxed function. Never imported
on the host. decorator.py compiles this file once, on the host, and sends its
bytecode (and its text, for an interpreter of another bytecode version) on
stdin with the call; the run's code is only the few lines of BOOTSTRAP, which
load it and exec it with the call as CALL:

    {"modules": {dotted name: {"source", "file", "package", "code"?}},
     "module": name, "function": qualname, "serializer": "json"|"pickle",
     "arguments": ..., "mark": a nonce, "magic": the host's bytecode magic}

Compiling is what costs under emulation (this file ~60 ms, a module of a few
hundred lines as much), so modules come compiled too ("code": base64 of
marshal) and are compiled here only when the magic differs.

The answer is the last line of stdout that starts with the mark: {"ok": true,
"value": ...} or {"ok": false, "type", "module", "message", "args",
"traceback"}. What the function prints comes before it."""
import sys


def _main():
    # Only modules the pooled interpreter has already loaded, or cheap ones:
    # under emulation importlib.abc alone costs ~200 ms, and every call pays
    # what this file imports. ModuleSpec comes from the import system itself.
    import binascii
    import json
    import linecache
    import marshal
    import traceback
    import types
    from _frozen_importlib import ModuleSpec
    from _frozen_importlib_external import MAGIC_NUMBER

    call = CALL  # noqa: F821 (given by the bootstrap)
    modules = call["modules"]
    compiled_here_too = call.get("magic") == MAGIC_NUMBER.hex()

    class Shipped:
        """Imports the caller's modules from their shipped text, ahead of the
        image's own (as the caller's script directory is first on its path).
        A meta path finder and loader by protocol (importlib.abc is dear)."""

        def find_spec(self, name, path=None, target=None):
            entry = modules.get(name)
            if entry is None:
                return None
            return ModuleSpec(name, self, origin=entry["file"], is_package=entry["package"])

        def create_module(self, spec):
            return None

        def exec_module(self, module):
            entry = modules[module.__name__]
            module.__file__ = entry["file"]
            # Tracebacks show the caller's lines though no such file is here.
            lines = entry["source"].splitlines(True)
            linecache.cache[entry["file"]] = (len(entry["source"]), None, lines, entry["file"])
            if compiled_here_too and entry.get("code"):
                code = marshal.loads(binascii.a2b_base64(entry["code"]))
            else:
                code = compile(entry["source"], entry["file"], "exec")
            exec(code, module.__dict__)

    sys.meta_path.insert(0, Shipped())
    if "airlock" not in modules:
        # The caller's module says `from airlock import sandboxed, ...`; here
        # the decorator is the identity, and the SDK's other names import
        # (so the module loads) but fail when used: no daemon is in reach.
        shim = types.ModuleType("airlock")

        def sandboxed(*args, **options):
            if len(args) == 1 and callable(args[0]) and not options:
                return args[0]
            return lambda function: function

        class Unavailable:
            def __init__(self, name):
                self._name = name

            def _refuse(self, *args, **kwargs):
                raise RuntimeError(f"airlock.{self._name} cannot be used inside a sandboxed call "
                                   "(only airlock.sandboxed is there, as the identity)")

            __call__ = _refuse

            def __getattr__(self, attribute):
                self._refuse()

        def placeholder(name):
            if name.startswith("__"):
                raise AttributeError(name)
            return Unavailable(name)

        shim.sandboxed = sandboxed
        shim.__getattr__ = placeholder
        sys.modules["airlock"] = shim

    def failure(error):
        try:
            carried = json.loads(json.dumps(list(error.args)))
        except (TypeError, ValueError):
            carried = None
        # From the function's own frame on: this file's frame is not the caller's business.
        frames = error.__traceback__.tb_next if error.__traceback__ else None
        return {"ok": False, "type": type(error).__qualname__, "module": type(error).__module__,
                "message": str(error), "args": carried,
                "traceback": "".join(traceback.format_exception(type(error), error, frames))}

    try:
        __import__(call["module"])
        function = sys.modules[call["module"]]
        for part in call["function"].split("."):
            function = getattr(function, part)
        if call["serializer"] == "pickle":
            import base64
            import pickle
            args, kwargs = pickle.loads(base64.b64decode(call["arguments"]))
        else:
            args, kwargs = call["arguments"]
        value = function(*args, **kwargs)
        if isinstance(value, types.CoroutineType):
            import asyncio
            value = asyncio.run(value)
        if call["serializer"] == "pickle":
            import pickle
            value = base64.b64encode(pickle.dumps(value)).decode("ascii")
        try:
            line = json.dumps({"ok": True, "value": value})
        except (TypeError, ValueError) as error:
            line = json.dumps(failure(TypeError(
                f"{call['function']}() returned a {type(value).__name__} that JSON cannot carry ({error}); "
                "return JSON types (dict, list, str, int, float, bool, None), or use serializer='pickle'")))
    except BaseException as error:  # the caller re-raises it
        line = json.dumps(failure(error))
    sys.stdout.flush()
    sys.stderr.flush()
    sys.stdout.write("\n" + call["mark"] + line + "\n")
    sys.stdout.flush()


_main()
