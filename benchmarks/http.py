"""HTTP benchmark: the FastAPI example under uvicorn against a bare ASGI app, in one run.

Run: ``python benchmarks/http.py [--events 1000] [--clients 16] [--postgres URL | --no-postgres]``.
The code is in ``benchmarks/http_bench.py`` (its docstring says what is measured); this file is
the name issue 13 asked for, and a guard: a file called ``http.py`` in a directory on
``sys.path`` shadows the standard library's ``http`` package, which is what happens to every
other script in ``benchmarks/`` (Python puts a script's own directory first on the path).
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _without_here() -> list[str]:
    return [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]


if __name__ == "__main__":
    # Run as a script: take this directory off the path before anything imports ``http``, and
    # put the repository root on it so ``benchmarks`` and ``examples`` import as packages.
    sys.path[:] = [os.path.dirname(_HERE), *_without_here()]
    from benchmarks.http_bench import main

    main()
elif __name__ == "http":
    # Another script in benchmarks/ imported the standard library's ``http`` and found this
    # file: hand the importer the real package instead (the import system returns whatever
    # sys.modules holds under the name once this module has run).
    import importlib

    saved = sys.path[:]
    sys.path[:] = _without_here()
    del sys.modules["http"]
    try:
        sys.modules["http"] = importlib.import_module("http")
    finally:
        sys.path[:] = saved
