"""Run `specmx ...` inside the test process (no interpreter start-up per call): the exit code
main() returns or argparse exits with, and what it printed."""

import contextlib
import io
from types import SimpleNamespace


def run_cli(*args):
    from specmx.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code
    return SimpleNamespace(returncode=code or 0, stdout=out.getvalue(), stderr=err.getvalue())
