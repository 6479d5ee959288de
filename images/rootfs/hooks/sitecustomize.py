
# Airlock: a copy of a live sandbox (a restore, a fork) sends every process
# of the sandbox SIGURG (ignored by default) once it runs; generators that a
# Python process seeded once, and that every copy of it would repeat, draw
# fresh seeds from the copy's own kernel RNG then. docs/snapshots.md.
def _airlock_reseed(signum, frame):
    import sys

    random = sys.modules.get("random")
    if random is not None:
        random.seed()
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        try:
            numpy_random.seed()
        except Exception:
            pass


def _airlock_install_reseed():
    import _signal

    try:
        if _signal.getsignal(_signal.SIGURG) == _signal.SIG_DFL:
            _signal.signal(_signal.SIGURG, _airlock_reseed)
    except (ValueError, OSError):
        pass  # not the main thread of the main interpreter


_airlock_install_reseed()
del _airlock_install_reseed
