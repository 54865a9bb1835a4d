"""How Program.run takes its arguments: ``data`` by position or by name, ``budget`` and
``trace`` by name, every other keyword a packet field; its signature and errors are
those of ``run(self, data=None, *, budget=None, trace=False, **fields)``."""
import inspect

import pytest

import pyebpf
from pyebpf.errors import BudgetExceeded

FRAME = bytes.fromhex("020000000002020000000001") + b"\x08\x00" + bytes(50)
MARK = "r0 = *(u32 *)(r1 + 8)\nexit"       # r0 = __sk_buff.mark


@pytest.fixture
def prog():
    return pyebpf.Program.from_asm(MARK, "sched_cls")


def test_the_signature_is_data_then_budget_trace_and_fields_by_name():
    params = inspect.signature(pyebpf.Program.run).parameters
    assert [(p.name, p.kind.name, p.default) for p in params.values()][1:] == [
        ("data", "POSITIONAL_OR_KEYWORD", None), ("budget", "KEYWORD_ONLY", None),
        ("trace", "KEYWORD_ONLY", False), ("fields", "VAR_KEYWORD", inspect.Parameter.empty)]


def test_the_docstring_is_runs():
    assert "\nRun once and return a :class:`Result`." in pyebpf.Program.run.__doc__


def test_data_by_name_runs_as_data_by_position(prog):
    assert prog.run(data=FRAME, mark=5).retval == prog.run(FRAME, mark=5).retval == 5


def test_keywords_other_than_budget_and_trace_are_packet_fields(prog):
    res = prog.run(FRAME, mark=7, priority=3)
    assert (res.retval, res.skb.mark, res.skb.priority) == (7, 7, 3)


def test_without_fields_the_packet_has_the_default_metadata(prog):
    assert prog.run(FRAME).retval == 0


def test_a_field_given_by_a_dict_counts_as_a_keyword(prog):
    assert prog.run(FRAME, **{"mark": 9}).retval == 9


def test_budget_by_name_caps_the_run(prog):
    with pytest.raises(BudgetExceeded):
        prog.run(FRAME, budget=1)
    assert prog.run(FRAME, budget=2).insn_count == 2


def test_trace_by_name_is_taken_as_a_truth_value(prog):
    assert prog.run(FRAME, trace=1).trace is not None
    assert prog.run(FRAME, trace=0).trace is None


def test_two_positional_arguments_are_a_type_error(prog):
    with pytest.raises(TypeError, match=r"at most 1 positional argument \(2 given\)"):
        prog.run(FRAME, FRAME)


def test_data_by_position_and_by_name_is_a_type_error(prog):
    with pytest.raises(TypeError, match="multiple values for keyword argument 'data'"):
        prog.run(FRAME, data=FRAME)


def test_an_unknown_field_is_refused(prog):
    with pytest.raises((TypeError, ValueError), match="no_such_field"):
        prog.run(FRAME, no_such_field=1)


def test_a_raw_program_refuses_fields():
    with pytest.raises(TypeError, match=r"got packet fields \(mark\)"):
        pyebpf.Program.from_asm("r0 = 0\nexit").run(b"", mark=1)


def test_run_called_on_the_class_takes_the_program_first(prog):
    assert pyebpf.Program.run(prog, FRAME, mark=4).retval == 4


def test_run_of_something_not_a_program_is_a_type_error():
    with pytest.raises(TypeError):
        pyebpf.Program.run(object(), FRAME)
