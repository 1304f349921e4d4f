"""Darknet-style command lines on argparse: flags are `-name value` anywhere on the line,
positional arguments in darknet's order, `-h/--help` everywhere.

make_parser(prog, description) builds a parser (single-dash long options, no abbreviations);
parse(parser, argv) parses with options and positionals intermixed and turns every argparse
error (unknown option, missing argument, bad number) into a one-line DarknetError with the
usage, which `python -m darknet_py` prints and exits 1 on. Flags of darknet and AlexeyAB's
fork that mean nothing here (-dont_show, -gpus 0,1, -mjpeg_port N, ...) are accepted with a
one-line note on stderr (add_ignored).
"""
import argparse
import sys

from ..errors import DarknetError

PROG = "python -m darknet_py"

# darknet / AlexeyAB flags that mean nothing here: name -> (takes a value, why)
IGNORED = {
    "-dont_show": (False, "there is no display window here"),
    "-show_imgs": (False, "there is no display window here"),
    "-fullscreen": (False, "there is no display window here"),
    "-benchmark": (False, "use `python -m darknet_py bench <cfg>`"),
    "-benchmark_layers": (False, "use `python -m darknet_py bench <cfg> -layers`"),
    "-letter_box": (False, "darknet_py always letterboxes, as pjreddie's darknet"),
    "-check_mistakes": (False, "not implemented"),
    "-map": (False, "run `detector map` after training instead"),
    "-mjpeg_port": (True, "there is no MJPEG stream here"),
    "-json_port": (True, "there is no JSON stream here"),
    "-http_post_host": (True, "there is no HTTP upload here"),
    "-gpus": (True, "one device per process here: use -i <gpu> or -nogpu"),
    "-avgframes": (True, "only `detector demo` reads video here"),
    "-time_limit_sec": (True, "use `detector demo -frames N` to stop a video early"),
}


class DarknetArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        raise DarknetError(f"{self.prog.removeprefix(PROG + ' ')}: {message}\nusage: {PROG} {short_usage(self)}")


class _Ignored(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        why = IGNORED.get(option_string, (None, "not used here"))[1]
        value = f" {values}" if isinstance(values, str) else ""
        print(f"darknet_py: note: {option_string}{value} is accepted and ignored ({why})",
              file=sys.stderr)


def make_parser(prog, description=None, epilog=None, ignored=True, skip_ignored=()):
    """A parser for `python -m darknet_py <prog>`; ignored=True accepts IGNORED's flags
    (except those in skip_ignored, which the command implements) with a note."""
    skip = set(skip_ignored)
    if ignored:
        listed = ", ".join(name + (" X" if IGNORED[name][0] else "") for name in IGNORED
                           if name not in skip)
        note = f"accepted and ignored (darknet/AlexeyAB compatibility): {listed}"
        epilog = f"{epilog}\n\n{note}" if epilog else note
    parser = DarknetArgumentParser(prog=f"{PROG} {prog}", description=description,
                                   epilog=epilog, allow_abbrev=False,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    if ignored:
        add_ignored(parser, skip)
    return parser


def add_ignored(parser, skip=()):
    for name, (has_value, _why) in IGNORED.items():
        if name in skip:
            continue
        parser.add_argument(name, action=_Ignored, nargs=None if has_value else 0,
                            help=argparse.SUPPRESS, dest=argparse.SUPPRESS,
                            default=argparse.SUPPRESS)
    return parser


def add_device(parser, exact=True):
    """The shared -i/-gpu <gpu>, -nogpu (and -exact) options."""
    group = parser.add_argument_group("device")
    group.add_argument("-i", "-gpu", dest="gpu", type=int, default=None, metavar="GPU",
                       help="GPU index (default: the GPU when CuPy finds one, else the CPU)")
    group.add_argument("-nogpu", action="store_true", help="run on the CPU")
    if exact:
        group.add_argument("-exact", action="store_true",
                           help="darknet's GEMM summation order: bit-faithful, slow")
    return parser


def parse(parser, argv):
    """Parse argv (options anywhere); argparse errors become one-line DarknetErrors."""
    try:
        namespace, extra = parser.parse_known_intermixed_args(list(argv))
    except TypeError as err:   # pragma: no cover (parsers built here support intermixing)
        raise DarknetError(f"{parser.prog}: {err}") from None
    if extra:
        unknown = [arg for arg in extra if arg.startswith("-") and len(arg) > 1
                   and not _is_number(arg)]
        if unknown:
            raise DarknetError(f"unknown option {unknown[0]}\nusage: {PROG} {short_usage(parser)}")
        raise DarknetError(f"unexpected argument {extra[0]}\n"
                           f"usage: {PROG} {short_usage(parser)}")
    return namespace


def usage_line(parser):
    """The parser's usage as one line without the `usage: python -m darknet_py ` prefix."""
    text = " ".join(parser.format_usage().split())
    return text.removeprefix("usage: ").removeprefix(PROG + " ")


def short_usage(parser):
    """A compact one-line usage for the top-level listing: positionals and the command's own
    options (no -h, no device options, no ignored flags)."""
    words = [parser.prog.removeprefix(PROG + " ")]
    optional = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, _Ignored)):
            continue
        if action.dest in ("gpu", "nogpu", "exact"):
            continue
        if not action.option_strings:
            name = action.metavar or action.dest
            nargs = action.nargs
            if nargs == argparse.SUPPRESS:   # inside parse_intermixed_args
                nargs = getattr(action, "save_nargs", nargs)
            if nargs == "*":
                words.append(f"[{name}...]")
            elif nargs == "?":
                words.append(f"[{name}]")
            else:
                words.append(f"<{name}>")
            continue
        flag = action.option_strings[0]
        if action.nargs == 0:
            text = flag
        elif action.choices:
            text = f"{flag} {'|'.join(map(str, action.choices))}"
        elif action.metavar is None and isinstance(action.default, (int, float)):
            text = f"{flag} {action.default:g}"
        elif action.metavar is None and isinstance(action.default, str):
            text = f"{flag} {action.default}"
        else:
            text = f"{flag} {action.metavar or action.dest.upper()}"
        optional.append(text if action.required else f"[{text}]")
    return " ".join(words + optional)


def dispatch(group, argv, commands, description=None):
    """`<group> <command> ...`: commands maps a sub-command to (parser factory, handler).
    `<group> -h` lists the sub-commands' usages; the handler gets the parsed namespace."""
    argv = list(argv)
    listing = "\n".join("  " + short_usage(factory()) for factory, _ in commands.values())
    if not argv or argv[0] in ("-h", "--help"):
        text = f"usage: {PROG} {group} <{'|'.join(commands)}> ...\n"
        if description:
            text += f"\n{description}\n"
        text += f"\ncommands:\n{listing}\n\n`{PROG} {group} <command> -h` for its options."
        if not argv:
            raise DarknetError(f"{group}: which command?\n{text}")
        print(text)
        return 0
    if argv[0] not in commands:
        raise DarknetError(f"unknown {group} command '{argv[0]}'\ncommands:\n{listing}")
    factory, handler = commands[argv[0]]
    return handler(parse(factory(), argv[1:]))


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def device_from(args):
    """-nogpu or -i <gpu>: darknet's device choice. Returns 'cpu', a GPU index, or None
    (no flag: the GPU when CuPy finds one, else the CPU, as darknet built with GPU=1).
    args: a namespace from a parser with add_device."""
    return "cpu" if args.nogpu else args.gpu
