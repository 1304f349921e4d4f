"""`python -m darknet_py <command> ...`, mirroring darknet's command line."""
import sys

from .errors import DarknetError

COMMANDS = {
    "detector": ("darknet_py.cli.detector", "main"),
    "detect": ("darknet_py.cli.detector", "detect_shortcut"),
    "classifier": ("darknet_py.cli.classifier", "main"),
    "classify": ("darknet_py.cli.classifier", "classify_shortcut"),
    "partial": ("darknet_py.cli.tools", "partial_main"),
    "forward": ("darknet_py.cli.tools", "forward_main"),
    "calc_anchors": ("darknet_py.cli.evaluate", "calc_anchors_main"),
    "voc_label": ("darknet_py.cli.evaluate", "voc_label_main"),
    "wordtree": ("darknet_py.cli.wordtree", "main"),
    "bench": ("darknet_py.cli.bench", "main"),
    "export": ("darknet_py.cli.export", "main"),
}

# commands whose module has no PARSERS table (yet): their usage constants
FALLBACK_USAGE = {}


def _command_usages(name):
    """Usage lines of a command, generated from its argparse parsers."""
    import importlib
    from .cli import short_usage
    module_name, _ = COMMANDS[name]
    lines = []
    try:
        module = importlib.import_module(module_name)
        parsers = getattr(module, "PARSERS", {}).get(name)
        if parsers:
            lines += [short_usage(factory()) for factory in parsers]
        fallback = FALLBACK_USAGE.get(name)
        if fallback and not parsers:
            text = getattr(importlib.import_module(fallback[0]), fallback[1], "")
            lines += [" ".join(line.split()).removeprefix("python -m darknet_py ")
                      for line in text.splitlines() if "darknet_py" in line]
    except Exception as err:   # noqa: BLE001 (an optional dependency may be missing)
        lines.append(f"{name} (unavailable: {err})")
    return lines or [name]


def usage():
    """The top-level usage: every command's usage from its parsers."""
    lines = ["usage: python -m darknet_py <command> [args]   (`<command> -h` for its options)",
             "commands:"]
    for name in COMMANDS:
        lines += ["  " + line for line in _command_usages(name)]
    lines.append("common options: -exact (darknet's GEMM summation order: bit-faithful, slow), "
                 "-i <gpu>, -nogpu")
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] not in COMMANDS:
        print(f"darknet_py: unknown command '{argv[0]}'\n{usage()}", file=sys.stderr)
        return 2
    module_name, function = COMMANDS[argv[0]]
    import importlib
    try:
        module = importlib.import_module(module_name)
        return getattr(module, function)(argv[1:]) or 0
    except DarknetError as err:
        print(f"darknet_py: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except OSError as err:
        # a file-system failure that no command turned into its own message: still one
        # line naming the path and the reason, never a traceback
        print(f"darknet_py: {os_error_line(err)}", file=sys.stderr)
        return 1
    except MemoryError as err:
        print(f"darknet_py: out of memory{': ' + str(err) if str(err) else ''} (a smaller "
              "batch, width or height needs less)", file=sys.stderr)
        return 1


def os_error_line(err):
    """`<path>: <reason>` of an OSError; a file standing where a folder is needed is said
    as such (os.makedirs reports it as "File exists")."""
    import os
    path, reason = err.filename, err.strerror or str(err)
    if isinstance(err, FileExistsError) and path is not None and os.path.exists(path) \
            and not os.path.isdir(path):
        reason = "a file is in the way where a folder is needed"
    if path is None:
        return reason
    where = f"{path} -> {err.filename2}" if err.filename2 is not None else f"{path}"
    return f"{where}: {reason}"


if __name__ == "__main__":
    sys.exit(main())
