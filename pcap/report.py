"""tcsim's report lines (``--report FILE``): their keys, each key's default, and the one
reader every consumer of a report uses.

A line is one JSON object per packet, in the capture's order.  ``--report-format
compact`` (the default) writes it without spaces and leaves out every key whose value
is its default (``DEFAULTS``); ``--report-format full`` writes every key on every line,
as ``json.dumps`` does.  ``read_line`` gives the same dict for either form of a
packet's line: every key of ``KEYS``, in that order, after any key a merge put first
(``capture``, ``tcsim --workers``)."""

from __future__ import annotations

import json

FORMATS = ("compact", "full")

# TC_ACT_* by value (include/uapi/linux/pkt_cls.h), the names a line's "verdict" takes
VERDICTS = {-1: "TC_ACT_UNSPEC", 0: "TC_ACT_OK", 1: "TC_ACT_RECLASSIFY", 2: "TC_ACT_SHOT",
            3: "TC_ACT_PIPE", 4: "TC_ACT_STOLEN", 5: "TC_ACT_QUEUED", 6: "TC_ACT_REPEAT",
            7: "TC_ACT_REDIRECT", 8: "TC_ACT_TRAP"}
VERDICT_VALUES = {name: value for value, name in VERDICTS.items()}
# what became of a packet (tcreplay's HOOK_*, in their order)
ACTIONS = ("delivered", "dropped", "consumed", "redirected", "fault", "dropped_before_tc")
# the actions of a packet no program gave a verdict and a length for
NO_OUTCOME = ("fault", "dropped_before_tc")

# Keys on every line, whatever their value: what a user greps for (index, verdict,
# action), the capture time once (in integer ns: a double holds today's times only to
# a few hundred ns, so "timestamp" is derived from it, not the reverse) and what has
# no default (the frame's length, the instructions run).
ALWAYS = ("index", "timestamp_ns", "len_in", "verdict", "action", "instructions")


def _verdict_value(line):
    verdict = line["verdict"]
    if verdict is None:
        return None
    return VERDICT_VALUES[verdict] if verdict in VERDICT_VALUES else int(verdict)


# key -> its value when a compact line leaves it out, from the rest of the line
DEFAULTS = {
    "timestamp": lambda line: line["timestamp_ns"] / 1e9,
    "caplen_in": lambda line: line["len_in"],
    "len_out": lambda line: None if line["action"] in NO_OUTCOME else line["len_in"],
    "truncated": lambda line: False,
    "retval": _verdict_value,
    "classid": lambda line: None if line["verdict"] is None else "0:0",
    "mark": lambda line: 0,
    "priority": lambda line: 0,
    "tc_index": lambda line: 0,
    "redirect": lambda line: None,
    "clones": lambda line: [],
    "trace_printk": lambda line: [],
    "programs_run": lambda line: 1,
    "errors": lambda line: [],
    "dropped_before_tc": lambda line: None,
}

# every key of a line, in the order both formats write them
KEYS = ("index", "timestamp", "timestamp_ns", "len_in", "caplen_in", "len_out", "truncated",
        "verdict", "retval", "action", "classid", "mark", "priority", "tc_index", "redirect",
        "clones", "trace_printk", "instructions", "programs_run", "errors",
        "dropped_before_tc")


def read_line(text, where="report") -> dict:
    """The packet's object from one report line (compact or full; ``str`` or
    ``bytes``), every key of ``KEYS`` filled in.  A line that is not a report's object
    raises ValueError naming ``where``."""
    try:
        line = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{where}: not a JSON line: {exc}") from None
    missing = [k for k in ALWAYS if not isinstance(line, dict) or k not in line]
    if missing:
        raise ValueError(f"{where}: not a tcsim report line: no {', '.join(missing)}")
    full = {k: v for k, v in line.items() if k not in DEFAULTS and k not in ALWAYS}
    for key in KEYS:
        full[key] = line[key] if key in line else DEFAULTS[key](line)
    return full


def read(path) -> list[dict]:
    """Every line of the report at ``path``, as ``read_line`` gives it."""
    with open(path, "rb") as f:
        return [read_line(text, f"{path}:{n}") for n, text in enumerate(f, 1) if text.strip()]


def compact(line: dict) -> dict:
    """``line`` (every key) without the keys that hold their default."""
    return {k: v for k, v in line.items()
            if k in ALWAYS or k not in DEFAULTS or v != DEFAULTS[k](line)}


def dumps(line: dict, fmt: str) -> bytes:
    """The report line of ``line`` (every key) in the format ``fmt`` (of ``FORMATS``)."""
    if fmt == "full":
        return (json.dumps(line) + "\n").encode()
    return (json.dumps(compact(line), separators=(",", ":")) + "\n").encode()


def with_capture(text: str, capture: str, fmt: str) -> str:
    """The line ``text`` (one report line of the format ``fmt``, without its newline)
    with a ``capture`` key first, the rest as written (a merged report's line)."""
    sep = (",", ":") if fmt == "compact" else (", ", ": ")
    return f'{{"capture"{sep[1]}{json.dumps(capture)}{sep[0]}{text[1:]}'
