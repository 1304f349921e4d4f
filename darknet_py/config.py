"""Darknet's cfg and .data readers (parser.c read_cfg / option_list.c), with located errors.

Darknet strips every space and tab from a line (not just the ends), skips lines starting with
'#', ';' or nothing, opens a section on '[', and splits options at the first '='. Options are
looked up by key with a default; a key that no lookup consumed is printed as "Unused field".
This module keeps each option's line so every complaint names file, line and section.
"""
from dataclasses import dataclass, field

from . import log
from .errors import CfgError

# Section names as darknet's string_to_layer_type accepts them, mapped to one canonical name.
SECTION_ALIASES = {
    "net": "net", "network": "net",
    "conv": "convolutional", "convolutional": "convolutional",
    "max": "maxpool", "maxpool": "maxpool",
    "avg": "avgpool", "avgpool": "avgpool",
    "route": "route", "reorg": "reorg", "region": "region",
    "soft": "softmax", "softmax": "softmax",
    "cost": "cost", "conn": "connected", "connected": "connected",
    "dropout": "dropout", "batchnorm": "batchnorm",
    # Known to darknet but outside darknet_py (YOLOv1, RNNs, later YOLO versions).
    "local": "local", "detection": "detection", "shortcut": "shortcut", "crop": "crop",
    "yolo": "yolo", "iseg": "iseg", "deconv": "deconvolutional",
    "deconvolutional": "deconvolutional", "activation": "activation", "logistic": "logistic",
    "l2norm": "l2norm", "crnn": "crnn", "gru": "gru", "lstm": "lstm", "rnn": "rnn",
    "lrn": "normalization", "normalization": "normalization", "upsample": "upsample",
}


@dataclass
class Option:
    key: str
    value: str
    line: int
    used: bool = False


@dataclass
class Section:
    """One [section] of a cfg: its canonical type, where it starts, and its options in order."""
    type: str
    name: str
    path: str
    line: int
    options: dict = field(default_factory=dict)
    repeats: list = field(default_factory=list)

    def where(self, option=None):
        line = option.line if option is not None else self.line
        return f"{self.path}:{line}: [{self.name}]"

    def _take(self, key):
        option = self.options.get(key)
        if option is not None:
            option.used = True
        return option

    def has(self, key):
        return key in self.options

    def text(self, key, default=None):
        option = self._take(key)
        return default if option is None else option.value

    def integer(self, key, default=None):
        option = self._take(key)
        if option is None:
            return default
        return _parse_number(self, option, int)

    def number(self, key, default=None):
        option = self._take(key)
        if option is None:
            return default
        return _parse_number(self, option, float)

    def numbers(self, key, kind=float, default=None):
        """A comma-separated list (anchors, steps, scales, layers)."""
        option = self._take(key)
        if option is None:
            return default
        items = [item for item in option.value.split(",") if item != ""]
        return [_parse_number(self, Option(key, item, option.line), kind) for item in items]

    def unused(self):
        return [option for option in self.options.values() if not option.used] + self.repeats


def section_from_options(kind, options, path="<options>"):
    """A Section built from plain values ({"filters": 16, "size": 3}), as if read from a cfg:
    how a layer is made without a cfg file (tests, programs that build networks)."""
    section = Section(SECTION_ALIASES.get(kind, kind), kind, path, 0)
    for line, (key, value) in enumerate(options.items(), start=1):
        if isinstance(value, (list, tuple)):
            value = ",".join(str(item) for item in value)
        section.options[key] = Option(key, str(value), line)
    return section


INT_MIN, INT_MAX = -2 ** 31, 2 ** 31 - 1


def _parse_number(section, option, kind):
    """atoi/atof as darknet uses them, but a value that is not a number is an error."""
    text = option.value
    try:
        value = float(text)
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise CfgError(f"{section.where(option)} option '{option.key}': expected {expected}, "
                       f"found '{text}'") from None
    if kind is int:
        if value != value or value in (float("inf"), float("-inf")):
            raise CfgError(f"{section.where(option)} option '{option.key}': expected an integer, "
                           f"found '{text}'")
        if not INT_MIN <= value <= INT_MAX:   # darknet's atoi into a C int
            raise CfgError(f"{section.where(option)} option '{option.key}': {text} is beyond "
                           f"a 32-bit integer (darknet reads it into a C int)")
        return int(value)  # atoi("1.5") is 1: truncation toward zero, as int() does
    return value


def read_cfg(path):
    """Parse a cfg file into a list of Sections; the first must be [net] or [network]."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as err:
        raise CfgError(f"{path}: cannot open cfg file: {err.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")   # a byte-order mark (Windows editors) is dropped
    except UnicodeDecodeError as err:
        raise CfgError(f"{path}: not a text cfg file (byte {err.start} is not UTF-8)") from None
    return parse_cfg_text(text, path)


def parse_cfg_text(text, path="<cfg>"):
    sections = []
    current = None
    for line_no, raw_line in enumerate(text.splitlines(), start=1):
        # darknet's strip() removes every space, tab and newline in the line; we also drop '\r'
        # so that CRLF files (which darknet rejects) read like their LF copies.
        line = "".join(raw_line.split())
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            if not line.endswith("]"):
                raise CfgError(f"{path}:{line_no}: malformed section header '{raw_line.strip()}' "
                               "(expected '[name]')")
            name = line[1:-1].lower()
            if name not in SECTION_ALIASES:
                raise CfgError(f"{path}:{line_no}: unknown section [{name}]")
            current = Section(SECTION_ALIASES[name], name, path, line_no)
            sections.append(current)
            continue
        if current is None:
            raise CfgError(f"{path}:{line_no}: option '{raw_line.strip()}' before the first "
                           "section (the file must start with [net])")
        if "=" not in line:
            raise CfgError(f"{current.where(Option('', '', line_no))} cannot parse line "
                           f"'{raw_line.strip()}' (expected key=value)")
        key, value = line.split("=", 1)
        if not key:
            raise CfgError(f"{current.where(Option('', '', line_no))} option with no name: "
                           f"'{raw_line.strip()}'")
        if key in current.options:
            # darknet's option_find returns the first occurrence; a repeat is never read.
            current.repeats.append(Option(key, value, line_no))
        else:
            current.options[key] = Option(key, value, line_no)
    if not sections:
        raise CfgError(f"{path}: empty cfg: no sections found")
    if sections[0].type != "net":
        raise CfgError(f"{sections[0].where()} first section must be [net] or [network]")
    return sections


def report_unused(sections, strict=False, stream=None):
    """Darknet prints "Unused field: 'key = value'" for options nothing read; strict makes it
    fatal. The lines go to `stream` when given, else to darknet_py's log (standard error)."""
    problems = []
    for section in sections:
        for option in section.unused():
            problems.append(f"{section.where(option)} Unused field: "
                            f"'{option.key} = {option.value}'")
    if problems and strict:
        raise CfgError("\n".join(problems))
    for problem in problems:
        if stream is None:
            log.info(problem)
        else:
            print(problem, file=stream)
    return problems


class DataOptions(dict):
    """A .data file's options: a dict of strings (as darknet's option list) that remembers
    each key's line, so that a value that is not a number names the file and line."""

    def __init__(self, path):
        super().__init__()
        self.path = path
        self.lines = {}

    def where(self, key):
        line = self.lines.get(key)
        return f"{self.path}:{line}" if line else str(self.path)

    def integer(self, key, default=None, minimum=None):
        """The value of `key` as an int (default when absent); not an integer, or below
        `minimum`: a CfgError naming the file and line."""
        if key not in self:
            return default
        value = self[key]
        try:
            number = int(value)
        except ValueError:
            raise CfgError(f"{self.where(key)}: {key} = {value}: expected an integer") \
                from None
        if minimum is not None and number < minimum:
            raise CfgError(f"{self.where(key)}: {key} = {value}: expected at least {minimum}")
        return number


def read_data_cfg(path):
    """A .data file (`key = value` lines) as a DataOptions dict, read as darknet's
    read_data_cfg does: of two lines with one key, the first counts (option_find)."""
    try:
        with open(path, "r", encoding="utf-8-sig", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError as err:
        raise CfgError(f"{path}: cannot open data file: {err.strerror}") from None
    options = DataOptions(path)
    for line_no, raw_line in enumerate(lines, start=1):
        line = "".join(raw_line.split())
        if not line or line[0] in "#;":
            continue
        if "=" not in line:
            raise CfgError(f"{path}:{line_no}: cannot parse line '{raw_line.strip()}' "
                           "(expected key=value)")
        key, value = line.split("=", 1)
        if key in options:   # option_find walks the list from its front: the first wins
            if value != options[key]:
                log.warn(f"{path}:{line_no}: {key} = {value} ignored: line "
                         f"{options.lines[key]} already set {key} = {options[key]} (darknet "
                         "uses the first)")
            continue
        options[key] = value
        options.lines[key] = line_no
    return options


def read_list(path, what="list"):
    """A list file (names, image paths), one entry per line, as darknet's get_paths."""
    try:
        with open(path, "r", encoding="utf-8-sig", errors="replace") as handle:
            lines = [line.rstrip("\r\n") for line in handle]
    except OSError as err:
        raise CfgError(f"{path}: cannot open {what}: {err.strerror}") from None
    for line_no, line in enumerate(lines, start=1):
        if "\0" in line:   # no path or name holds one; open() would refuse it later
            raise CfgError(f"{path}:{line_no}: a NUL byte: the {what} is a binary file, not "
                           "one entry per line")
    return lines


def find_data_file(section, key):
    """Open-able path for a file option (tree=, map=) of `section`, or None when absent.

    Darknet opens such paths relative to the working directory (cfgs say `data/9k.tree`).
    When that fails we also try next to the cfg and one folder up (the layout cfg/ + data/),
    so a cfg works from any directory; the error lists every place looked at.
    """
    value = section.text(key)
    if value is None:
        return None
    import os
    cfg_dir = os.path.dirname(os.path.abspath(section.path))
    candidates = [value]
    if not os.path.isabs(value):
        candidates += [os.path.join(cfg_dir, value), os.path.join(os.path.dirname(cfg_dir), value)]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    option = section.options[key]
    raise CfgError(f"{section.where(option)} {key}={value}: file not found (looked in: "
                   f"{', '.join(candidates)})")
