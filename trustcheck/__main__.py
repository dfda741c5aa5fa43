"""The console entry point (``trustcheck``) and ``python -m trustcheck``.

Its first action, before any heavy import, is to install the SIGINT and
SIGTERM handlers: an interrupted run must never look like a trusted one. The
handler writes one line to stderr and leaves at once with 130 (SIGINT) or 143
(SIGTERM), whatever the command was doing (importing, waiting for a server,
holding a lock). Nothing half-done is left looking trusted: every file that
records trust (state, pins, the trust dir cache) is written to a temporary
file and renamed into place, so a run cut short leaves the old file or the new
one, and a collection is recorded only after it was fully verified.

Keep this module tiny: only ``os``, ``signal`` and ``sys`` at module level.
"""

import contextlib
import os
import signal
import sys

INTERRUPTED_MESSAGE = "interrupted; nothing was trusted"
_LINE = (INTERRUPTED_MESSAGE + "\n").encode()


def _interrupted(signum: int, frame: object) -> None:
    with contextlib.suppress(OSError):
        os.write(2, _LINE)
    os._exit(128 + signum)  # no unwinding: threads blocked on a server cannot delay the exit


def install_signal_handlers() -> None:
    """SIGINT -> exit 130, SIGTERM -> exit 143, each with :data:`INTERRUPTED_MESSAGE`.

    A signal the parent set to be ignored stays ignored, as for any Unix tool.
    """
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:  # e.g. nohup, `cmd &` in a script
            signal.signal(sig, _interrupted)


install_signal_handlers()


def main() -> int:
    """Run the CLI with ``sys.argv``; the process exit code is the return value."""
    from trustcheck.cli import main as cli_main

    return cli_main()


def run() -> None:
    """The console script and ``python -m trustcheck``: :func:`main`, then leave.

    When the command is done, the interpreter's own teardown (freeing every module
    and object one by one) takes 12-17 ms, more than a small ``verify`` itself
    (docs/performance.md, P2). Nothing in it matters to a finished command, except
    what is done here first, in the order the interpreter does it: non-daemon
    threads still running (none, normally: the pools are joined) make the exit the
    ordinary one; the ``atexit`` callbacks run; stdout and stderr are flushed (a
    failed flush also takes the ordinary exit, which reports it). Then the process
    ends with :func:`main`'s code. Files that record trust are written and renamed
    (and closed) before :func:`main` returns.
    """
    code = main()
    import atexit
    import threading

    try:
        main_thread = threading.main_thread()
        if any(t is not main_thread and not t.daemon for t in threading.enumerate()):
            sys.exit(code)  # the interpreter joins them
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        sys.exit(code)
    os._exit(code & 0xFF)  # what the exit status of sys.exit(code) is


if __name__ == "__main__":
    run()
