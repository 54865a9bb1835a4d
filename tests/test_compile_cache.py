"""The tests' compile cache (tests/bpfc.py) is each user's own, and one that another
user made or could change is refused: whoever can write it chooses the objects the
tests run.  The attacks run as two unprivileged users (root needed, else skipped)."""
import os
import stat

import pytest

import bpfc
from users import (ATTACKER, VICTIM, as_user, assert_refused, plant_link_to_a_trap,  # noqa: F401
                   shared_tmp)

pytestmark = pytest.mark.skipif(not (bpfc.CLANG and bpfc.OBJCOPY and bpfc.READELF),
                                reason="clang-19/llvm-19 not installed (apt-get install "
                                       "clang-19 libbpf-dev)")
SOURCE = 'SEC("tc") int prog(struct __sk_buff *skb) { return TC_ACT_OK; }\n'
COMPILE = f"""
out = attempt(lambda: bpfc.compile_c({SOURCE!r}).hex())
"""


def cache_of(tmp, uid):
    return os.path.join(tmp, f"pyebpf-bpfc-{uid}")


def test_each_user_compiles_into_a_private_cache_of_their_own(shared_tmp):
    code = bpfc.compile_c(SOURCE).hex()
    for uid in (VICTIM, ATTACKER):
        assert as_user(uid, shared_tmp, COMPILE, imports="import bpfc") == {"ok": code}
        st = os.lstat(cache_of(shared_tmp, uid))
        assert (stat.S_ISDIR(st.st_mode), st.st_uid, stat.S_IMODE(st.st_mode)) == \
            (True, uid, 0o700)


def test_a_compile_cache_another_user_made_is_refused(shared_tmp):
    cache = cache_of(shared_tmp, VICTIM)
    as_user(ATTACKER, shared_tmp, f"""
os.mkdir({cache!r})
os.chmod({cache!r}, 0o777)
out = None
""")
    out = as_user(VICTIM, shared_tmp, COMPILE, imports="import bpfc")
    assert_refused(out, f"compile cache {cache} is owned by uid {ATTACKER}, not by you "
                        f"(uid {VICTIM})")
    assert os.listdir(cache) == []


def test_a_compile_cache_that_is_a_link_is_refused(shared_tmp):
    cache = cache_of(shared_tmp, VICTIM)
    trap = plant_link_to_a_trap(shared_tmp, cache)
    out = as_user(VICTIM, shared_tmp, COMPILE, imports="import bpfc")
    assert_refused(out, f"compile cache {cache} is a symbolic link (to {trap})")
    assert os.listdir(trap) == []
