"""The interpreter's two dispatches: threaded code (labels-as-values, where the compiler
has them; every other test runs it) and the portable C switch (the fallback for other
compilers, selectable at run time).  The whole conformance suite runs again through the
switch, giving the same r0 and instruction count as the threaded loop."""
import sysconfig

import pytest

from pyebpf import _core, conformance
from conftest import conformance_params


@pytest.fixture
def switch_dispatch():
    _core._set_dispatch("switch")
    yield
    _core._set_dispatch("threaded")


def test_a_gcc_or_clang_build_has_threaded_dispatch():
    compiler = sysconfig.get_config_var("CC") or ""
    if "gcc" not in compiler and "clang" not in compiler:
        pytest.skip(f"the core was built by {compiler!r}, neither GCC nor Clang")
    assert _core.COMPUTED_GOTO


def test_an_unknown_dispatch_is_refused():
    with pytest.raises(ValueError, match="'threaded' or 'switch'"):
        _core._set_dispatch("jit")


@pytest.mark.parametrize("path", conformance_params(), ids=lambda p: p.stem)
def test_conformance_file_through_the_switch(path, conformance_dir, switch_dispatch):
    case = conformance.parse(path.read_text())
    memory = case.mem or None
    switched = conformance.program_for(case.program()).run(memory)
    _core._set_dispatch("threaded")
    threaded = conformance.program_for(case.program()).run(memory)
    assert switched.retval == case.result
    assert switched.insn_count == threaded.insn_count
