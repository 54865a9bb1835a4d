import logging
import os
import warnings
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.internal.conjecture import providers as _providers
from scapy.all import conf as _scapy_conf

pytest_plugins = ("pytester",)

# When a test fails, hypothesis' pytest plugin imports its patch writer, and with it
# libcst, which raises a DeprecationWarning (mypy_extensions.TypedDict) at import; under
# filterwarnings=error that turns the failure report into an INTERNALERROR.  Importing
# it here, quietly, keeps failures readable.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import hypothesis.extra._patching  # noqa: F401
    except ImportError:
        pass

# Generated examples are the same in every run, so that the kernel's answers to them can
# be recorded once and played back where bpf(2) is refused.
settings.register_profile("pyebpf", derandomize=True, database=None)
settings.load_profile("pyebpf")
# Hypothesis also draws literals it finds in the modules imported so far
# (hypothesis.internal.conjecture.providers._get_local_constants), which makes a test's
# examples depend on which other tests ran first; without them they do not.
_no_constants = _providers.Constants()
_providers._get_local_constants = lambda: _no_constants

# scapy fills unset addresses from this host's routes and neighbours (as root it even sends
# ARP requests to learn them).  Test packets must be the same on every machine and for
# every user, so it knows no routes: unset MACs are broadcast or zero, unset IPs zero.
_scapy_conf.route.routes = []
_scapy_conf.route6.routes = []
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)

ROOT = Path(__file__).resolve().parent.parent
# shared/ sits beside the checkout (as in CI's clean clone); PYEBPF_SHARED overrides.
SHARED = Path(os.environ.get("PYEBPF_SHARED", ROOT.parent / "shared"))
CONFORMANCE_DIR = SHARED / "bpf_conformance" / "tests"
CONFORMANCE_FILES = sorted(CONFORMANCE_DIR.glob("*.data"))
CONFORMANCE_ABSENT = (f"bpf_conformance suite absent: no *.data files in {CONFORMANCE_DIR}; "
                      f"set PYEBPF_SHARED to a folder holding bpf_conformance/tests")


def conformance_params():
    """Parameters for a test over every file of the suite: the files, or, where the suite
    is absent, one placeholder (an empty parameter set fails at collection) that is
    skipped like every test asking for ``conformance_dir``."""
    return CONFORMANCE_FILES or [pytest.param(None, id="suite-absent")]


@pytest.fixture
def conformance_dir():
    """The folder of the suite's files; a test that asks for it is skipped where they are
    absent (``pytest_runtest_setup``)."""
    return CONFORMANCE_DIR


def pytest_runtest_setup(item):
    # Skipped here rather than in the fixture: pytest folds skips raised at one line into
    # one summary line, and reports a fixture's skip at each test's own line.
    if not CONFORMANCE_FILES and "conformance_dir" in item.fixturenames:
        pytest.skip(CONFORMANCE_ABSENT)


def pytest_assertrepr_compare(config, op, left, right):
    """A failed ``==`` of two byte strings (or of two equally long tuples or lists holding
    them) shows where they first differ: offset, protocol layer and a hexdump of both
    (``skbdiff.packet_diff``); other comparisons keep pytest's explanation."""
    if op != "==":
        return None
    import skbdiff      # not at the top: it imports pyebpf, which the header reports on
    binary = (bytes, bytearray, memoryview)
    pairs = [("", left, right)]
    if (isinstance(left, (tuple, list)) and isinstance(right, (tuple, list))
            and len(left) == len(right)):
        pairs = [(f"item {k}: ", a, b) for k, (a, b) in enumerate(zip(left, right)) if a != b]
    lines = []
    for label, a, b in pairs:
        if isinstance(a, binary) and isinstance(b, binary):
            diff = skbdiff.packet_diff(a, b, ("left", "right"), skbdiff.guess_start(bytes(b)))
            lines += (label + diff).splitlines()
    return [f"{_short(left)} == {_short(right)}"] + lines if lines else None


def _short(value, width=40):
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def child_python(**env):
    """(environment, working directory) for a child Python that imports the very pyebpf
    this test process imported: the installed package, not the checkout's sources
    (which have no compiled core in a clean clone)."""
    import pyebpf
    return ({**os.environ, "PYTHONPATH": str(Path(pyebpf.__file__).resolve().parent.parent),
             **env}, "/")


def pytest_addoption(parser):
    parser.addoption("--record-kernel-answers", action="store_true",
                     help="ask the running kernel (needs bpf(2)) and keep its answers in "
                          "tests/kernel_answers/ for the test modules that run")


# The one skip rule of the suite.  Differential tests never skip for want of bpf(2): where
# it is refused they get the kernel's recorded answers (tests/recorded_kernel.py).  Only
# tests that need the running kernel itself (network namespaces, tc, packet sockets, a
# bpffs mount, a whole object loaded by libbpf) ask for the ``live_kernel`` fixture, and
# tests that run children as other users ask for ``root``; those two skip, naming why.
_answers = None
_live_tests: set[str] = set()
CAP_NET_RAW = 13                   # include/uapi/linux/capability.h
_passed = {"replayable": 0, "live": 0}


def pytest_configure(config):
    global _answers
    from pyebpf import kernel
    from pyebpf.kernel import sysbpf

    import recorded_kernel
    live, reason = kernel.available()
    record = config.getoption("--record-kernel-answers")
    if record and not live:
        raise pytest.UsageError(f"--record-kernel-answers needs bpf(2): {reason}")
    mode = "record" if record else "live" if live else "replay"
    _answers = recorded_kernel.Answers(mode, sysbpf.calls)
    _answers.unavailable = reason
    sysbpf.calls = _answers
    kernel.available()          # through the answers from now on: answered where replayed


def pytest_unconfigure(config):
    if _answers is not None and _answers.mode == "record":
        _answers.save()


def pytest_report_header(config):
    a = _answers
    where = {"live": "live, each answer checked against the recorded one",
             "record": "live, answers recorded into tests/kernel_answers/",
             "replay": f"replayed from tests/kernel_answers/ (recorded on {a.kernel}); "
                       f"bpf(2) here: {a.unavailable}"}[a.mode]
    data = (f"{CONFORMANCE_DIR} ({len(CONFORMANCE_FILES)} files)" if CONFORMANCE_FILES
            else CONFORMANCE_ABSENT)
    return [f"pyebpf: conformance data {data}", f"pyebpf: kernel answers {where}"]


def pytest_collection_modifyitems(items):
    _live_tests.update(item.nodeid for item in items
                       if {"live_kernel", "root", "net_raw"} & set(item.fixturenames))
    _answers.live_only = _live_tests
    _answers.varying = {item.nodeid for item in items
                        if item.get_closest_marker("kernel_varies") is not None}


def pytest_runtest_logreport(report):
    if report.when == "call" and report.passed:
        _passed["live" if report.nodeid in _live_tests else "replayable"] += 1


def pytest_terminal_summary(terminalreporter):
    # What a run as root and one without bpf(2) must agree on (.ci/run compares the line):
    # the tests that pass outside live-kernel tests, the kernel answers they used and the
    # engine-against-kernel comparisons the helpers made.
    import recorded_kernel

    def outside_live_tests(counts: dict) -> int:
        return sum(n for test, n in counts.items() if test not in _live_tests)
    terminalreporter.write_line(
        f"pyebpf: {_passed['replayable']} tests passed, "
        f"{outside_live_tests(_answers.served)} kernel answers, "
        f"{outside_live_tests(recorded_kernel.COMPARISONS)} engine-kernel comparisons "
        f"(kernel answers {'replayed' if _answers.mode == 'replay' else 'asked live'}; "
        f"{_passed['live']} live-kernel or root tests passed)")


@pytest.fixture(autouse=True, scope="session")
def _private_pin_root(tmp_path_factory):
    """Pins made by the tests (pyebpf.load pins maps that ask for it) stay in a
    directory of this session's, never in the user's pin root."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PYEBPF_PIN_ROOT", str(tmp_path_factory.mktemp("pins")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def kernel_oracle():
    """The pyebpf.kernel package, answering live or from the recorded answers."""
    from pyebpf import kernel
    return kernel


def kernel_answers_replayed() -> bool:
    """Whether the kernel's answers come from tests/kernel_answers/: no program runs
    in the kernel, so nothing it would write (trace_pipe) can be read."""
    return _answers is not None and _answers.mode == "replay"


@pytest.fixture(scope="session")
def live_kernel():
    """The pyebpf.kernel package when bpf(2) works here; else a skip naming why."""
    from pyebpf import kernel
    if _answers.mode == "replay":
        pytest.skip(f"needs the running kernel itself: {_answers.unavailable}")
    return kernel


@pytest.fixture
def libbpf_instructions():
    """``(source, program, ask) -> bytes``: libbpf's instructions for a program, from
    ``ask()`` where bpf(2) works, else recorded (recorded_kernel.Answers)."""
    return _answers.libbpf_instructions


@pytest.fixture(scope="session")
def kernel_observation():
    """``(what, key, ask, unavailable=()) -> dict``: what ``ask()`` observed the running
    kernel do (bpf(2) straight to it), live where bpf(2) works, else recorded
    (recorded_kernel.Answers.observation)."""
    return _answers.observation


@pytest.fixture(scope="session")
def net_raw():
    """Nothing; a skip unless this process holds CAP_NET_RAW (AF_XDP and packet sockets
    want it).  Its tests count as root tests: a run without it cannot replay them."""
    with open("/proc/self/status") as status:
        caps = next(int(line.split()[1], 16) for line in status if line.startswith("CapEff:"))
    if not caps >> CAP_NET_RAW & 1:
        pytest.skip("needs CAP_NET_RAW, for AF_XDP sockets")


@pytest.fixture(scope="session")
def root():
    """Nothing; a skip unless this process runs as root (children run as other users)."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to run children as other users")
