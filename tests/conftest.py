import os
import warnings
from pathlib import Path

import pytest

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


def pytest_report_header(config):
    from pyebpf import kernel
    ok, reason = kernel.available()
    data = (f"{CONFORMANCE_DIR} ({len(CONFORMANCE_FILES)} files)" if CONFORMANCE_FILES
            else CONFORMANCE_ABSENT)
    return [f"pyebpf: conformance data {data}",
            f"pyebpf: kernel oracle {'available' if ok else 'unavailable: ' + reason}"]


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
    """The pyebpf.kernel module, or a skip naming why bpf(2) is refused here."""
    from pyebpf import kernel
    ok, reason = kernel.available()
    if not ok:
        pytest.skip(f"kernel oracle unavailable: {reason}")
    return kernel
