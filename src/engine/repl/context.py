# Airlock's Python code context: one interpreter that keeps its variables
# between cells. The agent starts it (python3 -c, isolated as an exec is)
# with a socket at fd 3 and speaks JSON lines over it (docs/protocol.md,
# "Code contexts"): a job {"code"} in; "result", "display" and "error"
# events and one "done" out. The cell's own output goes to fd 1 and 2,
# which the agent reads; stdio is flushed before every event, so the agent,
# draining those pipes before it passes an event on, keeps the order.
#
# Why our own loop and not ipykernel: docs/snapshots.md, "Code contexts".
import ast, base64, builtins, json, linecache, os, signal, sys, traceback, types

_CONTROL = 3
os.set_inheritable(_CONTROL, False)  # not for the cell's subprocesses
_CO_COROUTINE = 0x80
_MAX_JSON = 1 << 20

_main = types.ModuleType("__main__")
_main.__dict__["__builtins__"] = builtins
sys.modules["__main__"] = _main
sys.argv = [""]
_namespace = _main.__dict__
_running = False
_count = 0
_loop = None  # for cells with top-level await, made on first use


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def _dumps(message):
    try:
        return json.dumps(message, ensure_ascii=False, default=repr, allow_nan=False)
    except ValueError:
        # NaN or infinity in a JSON form (the host takes strict JSON): text only.
        if isinstance(message.get("data"), dict):
            message = dict(message, data={"text/plain": str(message["data"].get("text/plain", ""))})
            return json.dumps(message, ensure_ascii=False, default=repr, allow_nan=False)
        raise


def _send(message):
    _flush()
    data = (_dumps(message) + "\n").encode("utf-8", "replace")
    # A line goes whole: an interrupt waits until it is written.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        while data:
            data = data[os.write(_CONTROL, data):]
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _encoded(value):
    return base64.b64encode(value).decode("ascii") if isinstance(value, (bytes, bytearray)) else str(value)


_REPRS = (
    ("_repr_png_", "image/png", True),
    ("_repr_jpeg_", "image/jpeg", True),
    ("_repr_svg_", "image/svg+xml", False),
    ("_repr_html_", "text/html", False),
    ("_repr_markdown_", "text/markdown", False),
    ("_repr_latex_", "text/latex", False),
    ("_repr_json_", "application/json", False),
)


def _figure_png(figure):
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _is_figure(value):
    kind = type(value)
    return kind.__name__ == "Figure" and kind.__module__.startswith("matplotlib")


def _bundle(value):
    """The value as Jupyter's MIME bundle: text/plain always, richer forms where the object offers them."""
    data = {}
    if not isinstance(value, type):
        method = getattr(value, "_repr_mimebundle_", None)
        if callable(method):
            try:
                answer = method(include=None, exclude=None)
                if isinstance(answer, tuple):
                    answer = answer[0]
                if isinstance(answer, dict):
                    for mime, item in answer.items():
                        data[str(mime)] = _encoded(item) if mime.startswith("image/") else item
            except Exception:
                pass
        for name, mime, binary in _REPRS:
            method = getattr(value, name, None)
            if mime in data or not callable(method):
                continue
            try:
                item = method()
            except Exception:
                continue
            if isinstance(item, tuple):
                item = item[0]
            if item is not None:
                data[mime] = _encoded(item) if binary else item
        if _is_figure(value) and "image/png" not in data:
            try:
                data["image/png"] = _figure_png(value)
            except Exception:
                pass
    if "application/json" in data:
        try:
            json.dumps(data["application/json"], allow_nan=False)
        except (TypeError, ValueError):
            del data["application/json"]
    if "application/json" not in data and isinstance(value, (dict, list)):
        try:
            text = json.dumps(value, allow_nan=False)
            if len(text) <= _MAX_JSON:
                data["application/json"] = value
        except (TypeError, ValueError):
            pass
    try:
        data["text/plain"] = repr(value)
    except Exception as error:
        data["text/plain"] = "<unprintable %s: %s>" % (type(value).__name__, error)
    return data


def display(*values):
    """Shows values now, as the last expression of a cell is shown (a "display" event)."""
    for value in values:
        _send({"type": "display", "data": _bundle(value)})


builtins.display = display


def _show_figures(*args, **kwargs):
    # pyplot's show() in a context: every open figure as image/png, then closed.
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return
    for number in pyplot.get_fignums():
        figure = pyplot.figure(number)
        try:
            _send({"type": "display", "data": {"image/png": _figure_png(figure), "text/plain": repr(figure)}})
        except Exception as error:
            print("airlock: a figure could not be drawn: %s" % error, file=sys.stderr)
    pyplot.close("all")


def _adopt_pyplot():
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None and getattr(pyplot, "show", None) is not _show_figures:
        pyplot.show = _show_figures


def _evaluate(code):
    global _loop
    value = eval(code, _namespace)
    if code.co_flags & _CO_COROUTINE:
        if _loop is None:
            import asyncio

            _loop = asyncio.new_event_loop()
        value = _loop.run_until_complete(value)
    return value


_OWN_FILE = "<airlock-context>"  # this loop's frames (context_command compiles it so)


def _without_own_frames(summary, leading):
    # The -c line that started this loop leads the main traceback; our
    # frames anywhere in it are not the user's either.
    frames = list(summary.stack)
    while leading and frames and frames[0].filename in ("<string>", _OWN_FILE):
        frames.pop(0)
    summary.stack = traceback.StackSummary.from_list([f for f in frames if f.filename != _OWN_FILE])
    for chained in (summary.__cause__, summary.__context__):
        if chained is not None:
            _without_own_frames(chained, False)


def _error_event(error):
    try:
        summary = traceback.TracebackException(type(error), error, error.__traceback__)
        _without_own_frames(summary, True)
        lines = "".join(summary.format()).splitlines()
        value = str(error)
    except BaseException as unprintable:
        lines, value = [], "<unprintable: %s>" % type(unprintable).__name__
    return {"type": "error", "name": type(error).__name__, "value": value, "traceback": lines}


def _run_cell(code_text):
    global _count, _running
    _count += 1
    filename = "<cell-%d>" % _count
    linecache.cache[filename] = (len(code_text), None, code_text.splitlines(True), filename)
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    status = "error"
    try:
        try:
            _running = True
            tree = compile(code_text, filename, "exec", ast.PyCF_ONLY_AST | flags)
            last = None
            if tree.body and isinstance(tree.body[-1], ast.Expr):
                last = ast.Expression(tree.body.pop().value)
            _evaluate(compile(tree, filename, "exec", flags))
            value = _evaluate(compile(last, filename, "eval", flags)) if last is not None else None
            _adopt_pyplot()
            _show_figures()
            if value is not None:
                _namespace["_"] = value
                _send({"type": "result", "data": _bundle(value)})
            _running = False
            status = "ok"
        except BaseException as error:
            _running = False
            status = "interrupted" if isinstance(error, KeyboardInterrupt) else "error"
            _adopt_pyplot()
            _send(_error_event(error))
    finally:
        # Whatever happened above (even an interrupt inside it), the cell ends.
        _running = False
        _send({"type": "done", "status": status, "execution_count": _count})


def _on_interrupt(signum, frame):
    # Only user code is interrupted; between cells the signal is nothing.
    if _running:
        raise KeyboardInterrupt


def _jobs():
    pending = b""
    while True:
        while b"\n" not in pending:
            piece = os.read(_CONTROL, 1 << 16)
            if not piece:
                return
            pending += piece
        line, pending = pending.split(b"\n", 1)
        yield json.loads(line)


def _serve():
    signal.signal(signal.SIGINT, _on_interrupt)
    # A line reaches the host as it is printed, in one piece.
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True, write_through=False)
    _send({"type": "ready", "pid": os.getpid()})
    for job in _jobs():
        try:
            _run_cell(job["code"])
        except KeyboardInterrupt:
            pass  # arrived as the cell ended: its done went already


_serve()
