"""Loops as 6.18's verifier explores them (pyebpf/verifier/scc.py): the states of a
loop whose visit has backedges prune only within their ranges, so a program's
processed instructions and states are the kernel's."""

import pytest

from bpfc import compile_object
from test_kfuncs import ITER
from test_may_goto import CALLED, CAN_LOOP
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
    # the counter, widened when the outer loop repeats, reaches the iterator's next
    # call unlinked where the state there linked it to the copy it came from: an id of
    # the old state against none is a fresh id (check_scalar_ids), and this prunes
    "can_loop_inside_an_iterator": """
SEC("tc") int prog(struct __sk_buff *skb) {
    int i, j, s = 0;
    bpf_for(i, 0, 8) { for (j = 0; j < 5 && can_loop; j++) if (j & 1) s++; }
    return s;
}""",
    "iterator_with_a_volatile_sum_and_an_index_doubled": """
long arr[16];
SEC("tc") int prog(struct __sk_buff *skb) {
    int i;
    long m;
    volatile long s = 0;
    bpf_for(i, 0, 13) {
        if (skb->len > i) s += 1; else s -= 1;
        arr[i & 15] += i;
        m = i * 2;
        if (m < 20) s += arr[m & 15];
    }
    return s;
}""",
    # the inner loop comes back to a state exactly like an ancestor's, one may_goto
    # deeper: is_state_visited calls that an infinite loop only at the same depth
    "can_loop_inside_a_bounded_loop": """
long arr[16];
SEC("tc") int prog(struct __sk_buff *skb) {
    int i, j, k = 0;
    long s = 0;
    #pragma nounroll
    for (i = 0; i < 13; i++)
        for (j = 0; j < 20 && can_loop; j++) {
            if (i < 16) s += arr[i];
            k += 2; if (k > 10) k = 0; s += k;
        }
    return s;
}""",
    # the may_goto's previous iteration is the newest state at it still being
    # explored (find_prev_entry), not the second-nearest ancestor there: the sum is
    # widened against the right one (1,189 states instead of the kernel's 714)
    "iterator_inside_a_can_loop_loop": """
SEC("tc") int prog(struct __sk_buff *skb) {
    int i = 0, j, k = 0;
    long s = 0;
    while (can_loop) {
        if (i >= 6) break;
        bpf_for(j, 0, 3) { k += 2; if (k > 10) k = 0; s += k; }
        i++;
    }
    return s;
}""",
    # a can_loop function called from a can_loop loop (133 insns, 15 states before the
    # three above)
    "can_loop_function_called_from_a_can_loop_loop": CALLED,
    # a can_loop loop inside a can_loop loop, a counter cycling through both: the
    # inner loop's count, widened, then ``w3 += -1`` where it cannot be 0, which
    # wraps for every value and keeps its bounds (35,692 insns, 3,567 states before
    # scalar32_min_max_add did)
    "can_loop_inside_a_can_loop_loop": """
SEC("tc") int prog(struct __sk_buff *skb) {
    int i, j, k = 0;
    long s = 0;
    for (i = 0; i < 12 && can_loop; i++)
        for (j = 0; j < 20 && can_loop; j++) { k += 2; if (k > 10) k = 0; s += k; }
    return s;
}""",
    # an iterator loop inside a can_loop loop, the sum's 32-bit bounds changing from
    # one iteration to the next while its 64-bit ones stay: widen_imprecise_scalars
    # compares whole registers (regs_exact), so the sum is widened; compared on its
    # 64-bit bounds only it was not, and the paths waiting grew past 8,192 ("The
    # sequence of 8193 jumps is too complex") where the kernel accepts
    "iterator_inside_a_can_loop_loop_with_a_sum_changing_in_32_bits": """
SEC("tc") int prog(struct __sk_buff *skb) {
    int i, j;
    long s = 0;
    for (i = 0; i < 20 && can_loop; i++) {
        bpf_for(j, 0, 20) {
            s += i ^ skb->len; if (j & 1) s++; if (skb->len > i) s += 1; else s -= 1;
        }
    }
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


# an iterator loop inside a can_loop loop writing a stack array through pointers the
# compiler spills: a finished state of the outer loop stays uncleaned while its visit
# has backedges (clean_live_states skips incomplete_read_marks states), or it prunes
# paths the kernel explores (4,459 insns, 333 states against the kernel's 6,821, 498)
STACK_ARRAY_IN_NESTED_LOOPS = """
SEC("tc") int prog(struct __sk_buff *skb) {
    int i = 0, j, k = 0;
    long s = 0, buf[8] = {};
    while (can_loop) {
        if (i >= 4) break;
        bpf_for(j, 0, 3) {
            buf[i & 7] = 0; s += buf[(i + 1) & 7];
            k += 2; if (k > 10) k = 0; s += k;
        }
        i++;
    }
    return s;
}"""

# a stack array written in an iterator loop inside another loop: a finished state of
# the loop compares with RANGE_WITHIN while the visit has backedges, where a slot it
# forgot as dead matches only a slot never written (6,999 insns, 528 states against the
# kernel's 6,821, 498; 1,824, 126 against 1,929, 137; 2,481, 123 against 9,997, 504
# before that rule)
SHAPES.update({
    "stack_array_written_in_an_iterator_loop_in_a_can_loop_loop":
        STACK_ARRAY_IN_NESTED_LOOPS,
    "stack_array_written_in_an_iterator_loop_in_a_bounded_loop": """
SEC("tc") int prog(struct __sk_buff *skb) {
    int i, j;
    long s = 0, buf[8] = {};
    #pragma nounroll
    for (i = 0; i < 4; i++)
        bpf_for(j, 0, 3) { buf[i & 7] = j; s += buf[(i + 1) & 7]; if (j & 1) s++; }
    return s;
}""",
    "stack_and_global_arrays_written_in_an_iterator_loop_in_a_bounded_loop": """
long arr[16];
SEC("tc") int prog(struct __sk_buff *skb) {
    int i, j;
    long s = 0, buf[8] = {};
    #pragma nounroll
    for (i = 0; i < 20; i++) {
        bpf_for(j, 0, 5) {
            arr[j & 15] += j; buf[i & 7] = 0; s += buf[(i + 1) & 7]; arr[i & 15] += i;
        }
    }
    return s;
}""",
})


@pytest.mark.parametrize("shape", SHAPES)
def test_a_loop_is_explored_with_the_kernels_instructions_and_states(shape, monkeypatch):
    data = compile_object(CAN_LOOP + ITER + SHAPES[shape], flags=("-O2", "-mcpu=v3"))
    ours, kernels = counts_and_the_kernels(data, monkeypatch)
    assert ours == kernels


def test_a_stack_slot_a_loop_state_forgot_as_dead_matches_only_a_slot_never_written(
        monkeypatch):
    """While the loop's visit has backedges, a finished state of it compares with the
    current one as 6.18's RANGE_WITHIN: each byte of its allocated stack must be of the
    current state's kind (stacksafe), so buf[i], dead and forgotten at the outer
    loop's condition, does not match the next iteration's written buf[i] there
    (392 insns, 30 states without the rule; the kernel's 384, 31)."""
    data = compile_object(CAN_LOOP + ITER + """
SEC("tc") int prog(struct __sk_buff *skb) {
    int i, j;
    long s = 0, buf[4] = {};
    #pragma nounroll
    for (i = 0; i < 2; i++)
        bpf_for(j, 0, 2) { buf[i & 3] = j; s += buf[(i + 1) & 3]; if (j & 1) s++; }
    return s;
}""", flags=("-O2", "-mcpu=v3"))
    ours, kernels = counts_and_the_kernels(data, monkeypatch)
    assert ours == kernels


def test_a_finished_state_of_a_loop_with_backedges_prunes_no_more_than_the_kernels(
        monkeypatch):
    data = compile_object(CAN_LOOP + ITER + STACK_ARRAY_IN_NESTED_LOOPS,
                          flags=("-O2", "-mcpu=v3"))
    (ours, _), (kernels, _) = counts_and_the_kernels(data, monkeypatch)
    assert ours >= kernels


def test_a_sum_sign_extended_from_32_bits_keeps_its_signed_32_bit_range(monkeypatch):
    """``r3 = (s32)r2`` of a counter whose 64-bit range is [0, 2**32 - 1] and whose
    signed 32-bit range crosses zero: 6.18 keeps that signed range as the result's
    signed bounds (64- and 32-bit) where [S32_MIN, S32_MAX] was taken, so the sum it
    is added to stays narrower and a can_loop loop in a can_loop loop prunes as the
    kernel does (815 insns, 108 states against the kernel's 1,777, 211)."""
    data = compile_object(CAN_LOOP + """
SEC("tc") int prog(struct __sk_buff *skb) {
    int i, j;
    volatile long s = 0;
    long t;
    int k = 0;
    for (i = 0; i < 3 && can_loop; i++) {
        j = 0;
        while (can_loop) {
            if (j >= 5) break;
            if (s > 1000) break;
            t = j; if (t > 3) s += t;
            k += 2; if (k > 10) k = 0; s += k;
            j++;
        }
    }
    return s;
}""", flags=("-O2", "-mcpu=v4"))
    ours, kernels = counts_and_the_kernels(data, monkeypatch)
    assert ours == kernels


def test_a_read_of_the_other_half_of_a_narrow_spill_leaves_the_spill_imprecise():
    """j's 4-byte spill and i's misc bytes share a stack slot: loading i is not a fill,
    so mark_precise does not follow it into j's spill (check_stack_read_fixed_off adds
    no stack access to the history), may_goto widens j, and buf[j] is refused."""
    from objdiff import refused_alike
    refused_alike(compile_object(CAN_LOOP + """
long arr[16];
SEC("tc") int prog(struct __sk_buff *skb) {
    volatile int i = 0, j = 0, k = 0;
    volatile long s = 0;
    long buf[8] = {};
    while (can_loop) {
        for (j = 0; j < 3 && can_loop; j++) {
            for (k = 0; k < (skb->len & 7) && can_loop; k++)
                ;
            buf[j] = s;
        }
        arr[i & 15] += i;
        s += arr[(i * 2) & 15];
    }
    return s + buf[skb->len & 7];
}""", flags=("-O2", "-mcpu=v3")),
        "math between fp pointer and register with unbounded min value is not allowed")


def test_a_32_bit_fill_keeps_the_spills_id_so_the_iterators_bounds_reach_the_spill():
    """bpf_for's counter is spilled 4 bytes wide and filled back for its bounds check:
    the fill keeps the spill's id (coerce_reg_to_size leaves it), so the spill learns
    0..3 too, and the outer loop repeats the inner iterator's state exactly (an
    infinite loop, its reference ids mapped as refsafe maps them)."""
    from objdiff import assert_refused_alike, verdicts
    data = compile_object(CAN_LOOP + ITER + """
long arr[16];
SEC("tc") int prog(struct __sk_buff *skb) {
    volatile int i = 0, j = 0, k = 0;
    volatile long s = 0;
    long m;
    while (can_loop)
        ;
    for (i = 0; i < 13; i++) {
        bpf_for(j, 0, 4) {
            if (i & 1) s++;
            if (i & 1) s++;
            bpf_for(k, 0, 3) { m = k * 2; if (m < 20) s += arr[m & 15]; }
        }
        if (skb->len > i) s += 1; else s -= 1;
        m = i * 2; if (m < 20) s += arr[m & 15];
    }
    return s;
}""", flags=("-O2", "-mcpu=v3"))
    assert_refused_alike(*verdicts(data, whole_log=True), "infinite loop detected")


def test_an_iterator_loop_entered_again_with_a_new_reference_is_an_infinite_loop():
    """i lives in misc stack bytes, so the outer loop comes back to the iterator's
    loop with nothing changed but the iterator's reference id: an exact comparison
    maps ids (refsafe's check_ids), and is_state_visited calls this an infinite loop
    while the iterator is held."""
    from objdiff import assert_refused_alike, verdicts
    data = compile_object(CAN_LOOP + ITER + """
long arr[16];
SEC("tc") int prog(struct __sk_buff *skb) {
    volatile int i = 0, j = 0, k = 0;
    volatile long s = 0;
    long m;
    for (i = 0; i < (skb->len & 1) && can_loop; i++)
        ;
    for (i = 0; i < 16; i++) {
        m = i * 2; if (m < 20) s += arr[m & 15];
        bpf_for(j, 0, 4)
            for (k = 0; k < (skb->len & 1) && can_loop; k++)
                ;
        s += i;
    }
    return s;
}""", flags=("-O2", "-mcpu=v3"))
    ours, theirs = verdicts(data, whole_log=True)
    assert theirs is not None and "refs=" in theirs.split("cur state:")[-1], theirs
    assert_refused_alike(ours, theirs, "infinite loop detected")
