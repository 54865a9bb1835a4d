"""A load leaves no reference cycle behind: everything the verifier made for it is freed
when it returns, none of it left to the garbage collector (whose passes would cost every
load that follows)."""
import gc

import pyebpf

# a bpf-to-bpf call: the call chains are walked (check_call_chains) as well as the paths
CALLS = """
    call pc+2
    r0 = 0
    exit
    r0 = 1
    exit"""


def _garbage_of(source: str, fresh: int) -> list:
    """What a load of ``source`` (its first slot made unique by ``fresh``: never one the
    verifier remembers) leaves only the garbage collector can free."""
    code = pyebpf.asm.assemble(f"r0 = {fresh}\n" + source)
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        pyebpf.Program(code, "sched_cls")
        gc.collect()
        return [type(o).__name__ for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def test_a_load_with_calls_leaves_nothing_to_the_garbage_collector():
    assert _garbage_of(CALLS, 424242) == []


def test_a_load_without_calls_leaves_nothing_to_the_garbage_collector():
    assert _garbage_of("r0 = 0\nexit", 434343) == []
