"""signals.deferred: a signal that arrives inside the block is acted on at its end, as the
handler installed before it says: called, ignored, or (default action) raised."""
import os
import signal

import pytest

from darknet_py import signals


@pytest.fixture
def restore_handlers():
    saved = {n: signal.getsignal(n) for n in (signal.SIGINT, signal.SIGTERM)}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


def test_an_installed_handler_is_called_after_the_block(restore_handlers):
    seen = []
    signal.signal(signal.SIGTERM, lambda number, frame: seen.append(number))
    with signals.deferred():
        os.kill(os.getpid(), signal.SIGTERM)
        assert seen == []          # held while the block runs
    assert seen == [signal.SIGTERM]


def test_an_ignored_signal_stays_ignored(restore_handlers):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with signals.deferred():
        os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN


def test_a_default_action_is_raised(restore_handlers):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with pytest.raises(signals.Terminated):
        with signals.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
