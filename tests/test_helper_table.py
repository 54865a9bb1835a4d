"""docs/helpers-table.md lists every helper id as the engine and the kernel's per-type
sets have it; every helper offered but not implemented says why."""
from __future__ import annotations

from pathlib import Path

import pytest

from pyebpf import asm, isa, kernel
from pyebpf._core import implemented_helpers
from pyebpf.errors import KernelError
from pyebpf.skb import helper_table
from pyebpf.verifier import rules

DOC = Path(__file__).resolve().parent.parent / "docs" / "helpers-table.md"
OFFERED = (rules.helpers_allowed(rules.CLS, "current") | rules.helpers_allowed(rules.SF, "current")
           | rules.helpers_allowed(rules.KPROBE, "current"))


def test_the_docs_table_is_what_the_generator_writes_for_this_engine():
    assert DOC.read_text() == helper_table.render(), \
        "docs/helpers-table.md is stale: python -m pyebpf.skb.helper_table > " \
        "docs/helpers-table.md"


def test_the_table_has_one_row_per_helper_id_1_to_the_last():
    assert [r[0] for r in helper_table.rows(implemented_helpers())] == \
        list(range(1, isa.MAX_HELPER_ID + 1))


def test_every_offered_helper_not_implemented_has_a_reason():
    missing = OFFERED - implemented_helpers()
    assert sorted(missing - set(helper_table.WHY_NOT)) == []


def test_no_reason_is_kept_for_an_implemented_or_unoffered_helper():
    stale = set(helper_table.WHY_NOT) & implemented_helpers()
    unoffered = set(helper_table.WHY_NOT) - OFFERED
    assert (sorted(stale), sorted(unoffered)) == ([], [])


@pytest.mark.kernel
@pytest.mark.parametrize("prog_type", [rules.SF, rules.CLS, rules.ACT],
                         ids=lambda t: t.name.removeprefix("BPF_PROG_TYPE_").lower())
def test_the_helpers_offered_to_socket_filter_and_tc_programs_are_the_kernel_s(prog_type):
    """A bare ``call N`` for every id: the kernel refuses the ids its func_proto does
    not give the type ("cannot use helper", "invalid func": sk_filter_func_proto,
    tc_cls_act_func_proto) and goes on to check the arguments of the others; the
    table's columns are rules.helpers_allowed."""
    offered = set()
    for hid in range(1, isa.MAX_HELPER_ID + 1):
        try:
            with kernel.KernelProgram(asm.assemble(f"call {hid}\nr0 = 0\nexit"), prog_type,
                                      log_level=0):
                offered.add(hid)
        except KernelError as exc:
            if "invalid func" not in str(exc) and "cannot use helper" not in str(exc):
                offered.add(hid)
    mine = rules.helpers_allowed(prog_type, "current")
    assert (sorted(offered - mine), sorted(mine - offered)) == ([], [])
