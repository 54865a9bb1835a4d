"""Loops as 6.18's verifier explores them (pyebpf/verifier/scc.py): the states of a
loop whose visit has backedges prune only within their ranges, so a program's
processed instructions and states are the kernel's."""

import pytest

from bpfc import compile_object
from test_kfuncs import ITER
from test_may_goto import CAN_LOOP
from verifier_counts import counts_and_the_kernels

SHAPES = {
    # an iterator loop inside an iterator loop: the inner loop's states, pruned while
    # the outer visit had backedges, were pruned here by precise registers only
    "nested_iterators": """
SEC("tc") int prog(struct __sk_buff *skb) {
    int i, j, s = 0;
    bpf_for(i, 0, 10) { bpf_for(j, 0, 10) s += i * j; }
    return s;
}""",
    "iterator": """
SEC("tc") int prog(struct __sk_buff *skb) { int i, s = 0; bpf_for(i, 0, 100) s += i; return s; }
""",
    "iterator_indexing_an_array": """
long arr[16];
SEC("tc") int prog(struct __sk_buff *skb) {
    int i;
    long s = 0;
    bpf_for(i, 0, 16) { arr[i] = i; s += arr[i]; }
    return s;
}""",
    # no may_goto, iterator or callback: no backedge, nothing changes
    "bounded_loop": """
SEC("tc") int prog(struct __sk_buff *skb) {
    int i, s = 0;
    #pragma nounroll
    for (i = 0; i < 20; i++) s += i ^ skb->len;
    return s;
}""",
}


@pytest.mark.parametrize("shape", SHAPES)
def test_a_loop_is_explored_with_the_kernels_instructions_and_states(shape, monkeypatch):
    data = compile_object(CAN_LOOP + ITER + SHAPES[shape], flags=("-O2", "-mcpu=v3"))
    ours, kernels = counts_and_the_kernels(data, monkeypatch)
    assert ours == kernels
