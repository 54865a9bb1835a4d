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
    return [f"pyebpf: conformance data {CONFORMANCE_DIR}",
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
