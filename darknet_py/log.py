"""darknet_py's messages: one `logging` logger, written to the standard error.

darknet prints its progress and warnings with fprintf(stderr, ...); darknet_py sends the
same lines (the layer table, "Unused field", warnings) through the logger "darknet_py",
so that a program embedding darknet_py can silence or redirect them with the logging
module. The handler looks up sys.stderr at each message (not once at import), so output
redirection and pytest's capture see every line.

`warn_once(key, message)` is the one place that remembers which warnings were given, so a
quirk met on every iteration (a learning-rate step that never fires) is said once.
"""
import logging
import sys

logger = logging.getLogger("darknet_py")


class _CurrentStderr(logging.StreamHandler):
    """A StreamHandler on whatever sys.stderr is when a message is written."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


if not logger.handlers:
    _handler = _CurrentStderr()
    _handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(_handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False

_said = set()


def info(message):
    """A line darknet prints as it is (no prefix)."""
    logger.info(message)


def warn(message):
    logger.warning(f"darknet_py: warning: {message}")


def warn_once(key, message):
    """warn(message) the first time `key` is seen in this process."""
    if key not in _said:
        _said.add(key)
        warn(message)
