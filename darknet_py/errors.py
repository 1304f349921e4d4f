"""One exception type for every user-facing failure.

The command line catches DarknetError and prints its message without a traceback; every
message names what was wrong (file, line, section, expected vs found).
"""


class DarknetError(Exception):
    """Bad input or an unsupported feature, reported to the user as one clear message."""


class CfgError(DarknetError):
    """A .cfg or .data file that darknet_py cannot read."""


class WeightsError(DarknetError):
    """A .weights file that does not fit its cfg."""


class ImageError(DarknetError):
    """An image that cannot be read or decoded."""


class WriteError(DarknetError, OSError):
    """A file that could not be written (disk full, read-only, no permission...): one line
    with the path and the reason. Also an OSError, for callers that catch those."""
