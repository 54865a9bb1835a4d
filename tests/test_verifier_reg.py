"""The verifier's register as Python code sees it: the tnum and the eight bounds are C
integers of the kernel's widths (struct bpf_reg_state's s64, u64, s32 and u32), read as
ints, the tnum also as the (value, mask) pair tnum.py works on."""
import pytest

from pyebpf.verifier.reg import scalar


def test_a_constant_register_reads_its_value_in_every_view():
    r = scalar(-2)
    assert (r.var, r.smin, r.smax, r.umin, r.umax, r.s32min, r.s32max, r.u32min,
            r.u32max) == ((2**64 - 2, 0), -2, -2, 2**64 - 2, 2**64 - 2, -2, -2,
                          2**32 - 2, 2**32 - 2)


def test_an_unknown_register_reads_the_widest_bounds():
    r = scalar()
    assert (r.var, r.smin, r.smax, r.umin, r.umax, r.s32min, r.s32max, r.u32min,
            r.u32max) == ((0, 2**64 - 1), -2**63, 2**63 - 1, 0, 2**64 - 1, -2**31,
                          2**31 - 1, 0, 2**32 - 1)


def test_the_tnum_written_as_a_pair_is_its_value_and_mask_fields():
    r = scalar()
    r.var = (0x10, 0x0F)
    assert (r.var_value, r.var_mask, r.var) == (0x10, 0x0F, (0x10, 0x0F))


@pytest.mark.parametrize("field, value", [("umax", -1), ("smin", -2**63 - 1),
                                          ("u32max", 2**32), ("s32min", -2**31 - 1)])
def test_a_bound_out_of_its_fields_range_is_refused(field, value):
    r = scalar()
    with pytest.raises(OverflowError):
        setattr(r, field, value)
