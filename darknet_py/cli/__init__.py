"""Darknet-style command line helpers: flags are `-name value` anywhere on the line."""
from ..errors import DarknetError


class Args:
    """argv with darknet's find_arg / find_int_arg / find_float_arg / find_char_arg: each
    lookup removes the flag (and its value) so the positional arguments remain."""

    def __init__(self, argv):
        self.argv = list(argv)

    def _take(self, names, has_value):
        for i, arg in enumerate(self.argv):
            if arg in names:
                if not has_value:
                    del self.argv[i]
                    return True
                if i + 1 >= len(self.argv):
                    raise DarknetError(f"option {arg} needs a value")
                value = self.argv[i + 1]
                del self.argv[i:i + 2]
                return value
        return None

    def flag(self, *names):
        return bool(self._take(names, False))

    def text(self, *names, default=None):
        value = self._take(names, True)
        return default if value is None else value

    def integer(self, *names, default=None):
        value = self._take(names, True)
        try:
            return default if value is None else int(value)
        except ValueError:
            raise DarknetError(f"option {names[0]}: expected an integer, found '{value}'") from None

    def number(self, *names, default=None):
        value = self._take(names, True)
        try:
            return default if value is None else float(value)
        except ValueError:
            raise DarknetError(f"option {names[0]}: expected a number, found '{value}'") from None

    def positional(self, count, usage):
        """The first `count` remaining arguments (None where absent); unknown flags fail."""
        unknown = [arg for arg in self.argv if arg.startswith("-") and len(arg) > 1
                   and not _is_number(arg)]
        if unknown:
            raise DarknetError(f"unknown option {unknown[0]}\nusage: {usage}")
        return (self.argv + [None] * count)[:count]


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def device_from(args):
    """-nogpu or -i <gpu>: darknet's device choice. Returns 'cpu', a GPU index, or None
    (no flag: the GPU when CuPy finds one, else the CPU, as darknet built with GPU=1)."""
    if args.flag("-nogpu"):
        args.integer("-i")
        return "cpu"
    return args.integer("-i", "-gpu")

