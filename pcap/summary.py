"""What a replay did, as one summary (``tcsim --json``), and the progress bar of a long run.

The counts come from the replay loop's packed outcome records: each is a count over a
column of that buffer (``collections.Counter``, ``sum``, ``itertools.compress`` over a
``memoryview``), so no Python code runs per packet.

The progress bar is a few lines here rather than tqdm: one bar on one stream is all
tcsim draws, and a dependency for it would be one more install for every user.
"""
from __future__ import annotations

import itertools
import operator
import struct
import sys
import time
from collections import Counter

from . import tcreplay

_RECORD = struct.calcsize(tcreplay.REPLAY_RECORD)
_WORDS = _RECORD // 4                   # int32 columns of a record
_VERDICT, _REDIRECT_IFINDEX = 0, 5      # their int32 column in REPLAY_RECORD
_ACTION, _REDIRECT_INGRESS = 40, 42     # their byte column in REPLAY_RECORD
FAULT, REDIRECTED = 4, 3


def _column_i32(records: bytes, word: int):
    return memoryview(records).cast("i")[word::_WORDS]


def _column_u8(records: bytes, at: int):
    return memoryview(records)[at::_RECORD]


def fault_kinds(extras) -> Counter:
    """Faults by kind: the exception's class, or ``bad_frame`` for a frame no skb holds."""
    return Counter("bad_frame" if isinstance(e["error"], str) else type(e["error"]).__name__
                   for e in extras.values() if "error" in e)


def summary(replay, capture, elapsed: float, verdicts: dict, actions: tuple) -> dict:
    """The summary of one replay as a JSON-ready dict (see docs/tcsim.md)."""
    records, count = replay.records, replay.count
    acts = _column_u8(records, _ACTION)
    by_action = Counter(acts)
    ran = list(map(operator.gt, itertools.repeat(FAULT), acts))   # a verdict was reached
    by_verdict = Counter(itertools.compress(_column_i32(records, _VERDICT), ran))
    redirected = list(map(operator.eq, itertools.repeat(REDIRECTED), acts))
    targets = Counter(itertools.compress(
        zip(_column_i32(records, _REDIRECT_IFINDEX), _column_u8(records, _REDIRECT_INGRESS)),
        redirected))
    leaving = list(map(operator.or_, map(operator.eq, itertools.repeat(0), acts), redirected))
    frames, data = capture.frames[:count], replay.data
    return {
        "capture": str(capture.path),
        "packets": count,
        "actions": {name: by_action[k] for k, name in enumerate(actions)},
        "verdicts": {verdicts.get(v, str(v)): n for v, n in sorted(by_verdict.items())}
        if replay.mode != "sf" else {},
        "redirects": {f"{ifindex}{'-ingress' if ingress else ''}": n
                      for (ifindex, ingress), n in sorted(targets.items())},
        "bytes_in": sum(map(len, frames)),
        "bytes_out": sum(map(len, itertools.compress(data, leaving))),
        "packets_changed": sum(map(operator.is_not, data, frames)),
        "faults": dict(sorted(fault_kinds(replay.extras).items())),
        "wall_time": round(elapsed, 6),
        "packets_per_second": round(count / elapsed, 1) if elapsed else None,
    }


def merge(summaries: list) -> dict:
    """One summary of several replays (one per capture): counts added, the wall time the
    caller measured for all of them."""
    out = {"captures": [s["capture"] for s in summaries], "packets": 0, "actions": Counter(),
           "verdicts": Counter(), "redirects": Counter(), "bytes_in": 0, "bytes_out": 0,
           "packets_changed": 0, "faults": Counter()}
    for s in summaries:
        for key in ("packets", "bytes_in", "bytes_out", "packets_changed"):
            out[key] += s[key]
        for key in ("actions", "verdicts", "redirects", "faults"):
            out[key].update(s[key])
    for key in ("actions", "verdicts", "redirects", "faults"):
        out[key] = dict(sorted(out[key].items()))
    return out


class Progress:
    """A one-line bar on ``stream`` (stderr), drawn only when it is a terminal and the run
    has lasted ``delay`` seconds; ``quiet`` never draws.  Called with the packets done."""

    WIDTH = 30

    def __init__(self, total: int, *, stream=None, quiet=False, delay=1.0):
        self.stream = stream or sys.stderr
        self.total, self.start, self.delay = total, time.monotonic(), delay
        self.active = not quiet and total > 0 and self.stream.isatty()
        self.drawn = False

    def __call__(self, done: int) -> None:
        if not self.active:
            return
        elapsed = time.monotonic() - self.start
        if elapsed < self.delay:
            return
        filled = self.WIDTH * done // self.total
        rate = done / elapsed
        self.stream.write(f"\rtcsim: [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
                          f"{done}/{self.total} packets, {rate:,.0f}/s")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        """Clear the bar so that the lines after it start on a clean line."""
        if self.drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.drawn = False
