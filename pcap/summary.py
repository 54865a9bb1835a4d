"""What a replay did, as one summary (``tcsim --json``), and the progress bar of a long run.

The counts are the replay loop's own (``tcreplay.Loop``: per action, per verdict, per
redirect target, bytes in and out, packets changed), kept in C as it goes; only faults,
which have a Python exception each anyway, are counted here.

The progress bar is a few lines here rather than tqdm: one bar on one stream is all
tcsim draws, and a dependency for it would be one more install for every user.
"""
from __future__ import annotations

import sys
import time
from collections import Counter


def plural(n: int, word: str) -> str:
    """``"1 packet"``, ``"2 packets"``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def fault_kinds(extras) -> Counter:
    """Faults by kind: the exception's class, or ``bad_frame`` for a frame no skb holds."""
    return Counter("bad_frame" if isinstance(e["error"], str) else type(e["error"]).__name__
                   for e in extras.values() if "error" in e)


def summary(loop, capture: str, faults: Counter, elapsed: float, verdicts: dict,
            actions: tuple, sf: bool) -> dict:
    """The summary of one replay (a tcreplay.Loop after it) as a JSON-ready dict (see
    docs/tcsim-options.md)."""
    counts = loop.counts
    return {
        "capture": str(capture),
        "packets": loop.count,
        "actions": {name: counts[k] for k, name in enumerate(actions)},
        "verdicts": {} if sf else {verdicts.get(v, str(v)): n
                                   for v, n in sorted(loop.verdicts.items())},
        "redirects": {f"{ifindex}{'-ingress' if ingress else ''}": n
                      for (ifindex, ingress), n in sorted(loop.redirects.items())},
        "bytes_in": loop.bytes_in,
        "bytes_out": loop.bytes_out,
        "packets_changed": loop.changed,
        "faults": dict(sorted(faults.items())),
        "wall_time": round(elapsed, 6),
        "packets_per_second": round(loop.count / elapsed, 1) if elapsed else None,
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
    has lasted ``delay`` seconds; ``quiet`` never draws.  Called after each chunk with
    the packets replayed and the bytes of the capture read; ``size`` is the capture's
    (0 when unknown, as for standard input: then no bar, only the counts)."""

    WIDTH = 30

    def __init__(self, size: int, *, stream=None, quiet=False, delay=1.0):
        self.stream = stream or sys.stderr
        self.size, self.start, self.delay = size, time.monotonic(), delay
        self.active = not quiet and self.stream.isatty()
        self.drawn = False

    def __call__(self, packets: int, position: int) -> None:
        if not self.active:
            return
        elapsed = time.monotonic() - self.start
        if elapsed < self.delay:
            return
        bar = ""
        if self.size:
            filled = min(self.WIDTH, self.WIDTH * position // self.size)
            bar = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] "
        self.stream.write(f"\rtcsim: {bar}{packets} packets, {packets / elapsed:,.0f}/s")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        """Clear the bar so that the lines after it start on a clean line."""
        if self.drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.drawn = False
