"""Stopping a training run cleanly: SIGTERM handled like Ctrl-C (darknet saves nothing on
either; darknet_py saves the backup), and short sections that a signal must not cut in two
(the SGD update of every layer, a checkpoint write) run with the signal deferred.

Signal handlers can only be set in the main thread; elsewhere these do nothing.
"""
import os
import signal
import threading
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C's KeyboardInterrupt would be."""


def _main_thread():
    return threading.current_thread() is threading.main_thread()


def _raise_terminated(signum, frame):
    raise Terminated()


@contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM raises Terminated (a KeyboardInterrupt)."""
    if not _main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def deferred(default_action="raise"):
    """SIGINT and SIGTERM that arrive inside the block are acted on when it ends: the
    handler that was installed is called; an ignored signal stays ignored; for a signal
    with its default action, default_action "raise" raises KeyboardInterrupt / Terminated
    and "kill" re-sends the signal to this process (the default action, now)."""
    if not _main_thread():
        yield
        return
    pending = []
    previous = {number: signal.signal(number, lambda signum, frame: pending.append(signum))
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            # None: a handler not installed from Python, which Python cannot reinstall
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
        if pending:
            handler = previous[pending[0]]
            if callable(handler):
                handler(pending[0], None)
            elif handler == signal.SIG_IGN:
                pass
            elif default_action == "kill":
                os.kill(os.getpid(), pending[0])
            elif pending[0] == signal.SIGINT:
                raise KeyboardInterrupt()
            else:
                raise Terminated()
