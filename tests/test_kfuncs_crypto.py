"""The crypto kfuncs (``bpf_crypto_encrypt``, ``bpf_crypto_decrypt``: kernel/bpf/crypto.c)
against the kernel: load verdicts, then runs of a tc program that encrypts or decrypts
packet bytes with a context kept in a map's ``struct bpf_crypto_ctx __kptr`` field
(BPF_PROG_TEST_RUN's retval, the packet, the program's globals: destination and IV).

The kernel creates the context in a BPF_PROG_TYPE_SYSCALL program (sleepable: it calls
``bpf_crypto_ctx_create``, then ``bpf_kptr_xchg``s it into the map), run here with
BPF_PROG_TEST_RUN; pyebpf does not run syscall programs and creates it with
``Map.create_crypto_ctx`` instead.  Test vectors: FIPS-197 appendix C (ECB) and
SP 800-38A F.2.1 (CBC-AES128).
"""
from __future__ import annotations

import struct

import pytest

import pyebpf
from pyebpf import isa
from pyebpf.errors import MapError
from pyebpf.kernel import load_object, sysbpf
from pyebpf.kernel.oracle import KernelProgram
from pyebpf.kernel.vmlinux import kfunc_btf_id
from pyebpf.verifier.globalfuncs import kernel_takes

from bpfc import compile_object
from objdiff import verdicts
from recorded_kernel import count_comparison

DECLS = r"""
struct bpf_crypto_ctx { void *type; void *tfm; __u32 siv_len; }
    __attribute__((preserve_access_index));
struct bpf_crypto_params { char type[14]; __u8 reserved[2]; char algo[128]; __u8 key[256];
                           __u32 key_len; __u32 authsize; };
extern struct bpf_crypto_ctx *bpf_crypto_ctx_create(const struct bpf_crypto_params *params,
                                                    __u32 params__sz, int *err) __ksym;
extern void bpf_crypto_ctx_release(struct bpf_crypto_ctx *ctx) __ksym;
extern int bpf_crypto_encrypt(struct bpf_crypto_ctx *ctx, const struct bpf_dynptr *src,
                              const struct bpf_dynptr *dst, const struct bpf_dynptr *siv)
    __ksym;
extern int bpf_crypto_decrypt(struct bpf_crypto_ctx *ctx, const struct bpf_dynptr *src,
                              const struct bpf_dynptr *dst, const struct bpf_dynptr *siv)
    __ksym;
extern int bpf_dynptr_from_skb(struct __sk_buff *skb, __u64 flags,
                               struct bpf_dynptr *ptr__uninit) __ksym;
extern int bpf_dynptr_adjust(const struct bpf_dynptr *ptr, __u32 start, __u32 end) __ksym;
struct value { struct bpf_crypto_ctx __attribute__((btf_type_tag("kptr"))) *ctx; };
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __type(key, int); __type(value, struct value);
         __uint(max_entries, 1); } ctxs SEC(".maps");
char LICENSE[] SEC("license") = "GPL";
"""

# the selftests' shape: create, then exchange into the map (crypto_ctx_insert)
SETUP = r"""
SEC("syscall") int setup(void *c)
{
    struct bpf_crypto_params params = { .type = "%(type)s", .algo = "%(algo)s",
        .key = { %(key)s }, .key_len = %(key_len)d, .authsize = %(authsize)d };
    struct bpf_crypto_ctx *cctx, *old;
    struct value *v;
    int err = 0, k = 0;

    cctx = bpf_crypto_ctx_create(&params, sizeof(params), &err);
    if (!cctx)
        return err;
    v = bpf_map_lookup_elem(&ctxs, &k);
    if (!v) {
        bpf_crypto_ctx_release(cctx);
        return -2;
    }
    old = bpf_kptr_xchg(&v->ctx, cctx);
    if (old)
        bpf_crypto_ctx_release(old);
    return 0;
}
"""

# src: packet bytes [OFF, OFF + LEN); dst: the global ``out`` (or packet bytes); the IV
# (or none) the global ``iv``
PROG = r"""
unsigned char out[%(dst_len)d] = {};
unsigned char iv[%(iv_len)d] = { %(iv)s };

SEC("tc") int prog(struct __sk_buff *skb)
{
    struct bpf_dynptr psrc, pdst, piv;
    struct bpf_crypto_ctx *cctx;
    struct value *v;
    int k = 0;

    v = bpf_map_lookup_elem(&ctxs, &k);
    if (!v)
        return -2;
    cctx = v->ctx;
    if (!cctx)
        return -2;
    bpf_dynptr_from_skb(skb, 0, &psrc);
    bpf_dynptr_adjust(&psrc, %(off)d, %(off)d + %(len)d);
    %(dst)s
    bpf_dynptr_from_mem(iv, sizeof(iv), 0, &piv);
    return bpf_crypto_%(op)s(cctx, &psrc, &pdst, %(iv_arg)s);
}
"""
TO_GLOBAL = "bpf_dynptr_from_mem(out, sizeof(out), 0, &pdst);"
IN_PACKET = ("bpf_dynptr_from_skb(skb, 0, &pdst); "
             "bpf_dynptr_adjust(&pdst, %(dst_off)d, %(dst_off)d + %(len)d);")

FIPS_PLAIN = bytes.fromhex("00112233445566778899aabbccddeeff")
FIPS_KEY = bytes(range(32))
FIPS_ECB = {16: "69c4e0d86a7b0430d8cdb78070b4c55a", 24: "dda97ca4864cdfe06eaf70a0ec0d7191",
            32: "8ea2b7ca516745bfeafc49904b496089"}
SP800_KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
SP800_IV = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
SP800_PLAIN = bytes.fromhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
                            "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")
SP800_CBC = bytes.fromhex("7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
                          "73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7")
OFF = 14                    # the payload after an Ethernet header


def _c_bytes(b: bytes) -> str:
    return ", ".join(str(x) for x in b) or "0"


def setup_source(algo: str, key: bytes, authsize: int = 0, type: str = "skcipher") -> str:
    return SETUP % {"type": type, "algo": algo, "key": _c_bytes(key), "key_len": len(key),
                    "authsize": authsize}


def prog_source(op: str, length: int, *, iv: bytes | None = None, dst_len: int = 64,
                dst_off: int | None = None, iv_len: int | None = None) -> str:
    """The tc program; ``dst_off``: the destination is the packet's bytes from there
    (OFF: in place), not the global ``out``."""
    fields = {"off": OFF, "len": length, "dst_off": dst_off}
    return PROG % {"dst_len": dst_len, "iv_len": iv_len or max(len(iv or b""), 1),
                   "iv": _c_bytes(iv or b""), "op": op,
                   "dst": TO_GLOBAL if dst_off is None else IN_PACKET % fields,
                   "iv_arg": "&piv" if iv is not None else "NULL", **fields}


def kernel_setup(kobj) -> int:
    """Run the object's syscall program ``setup`` in the kernel: its return value (0,
    or bpf_crypto_ctx_create's -errno)."""
    spec = kobj.spec
    ps = next(p for p in spec.programs.values() if p.name == "setup")
    code = ps.instructions({n: m.fd for n, m in kobj.maps.items()}, kfunc_btf_id)
    btf = spec.kernel_btf if ps.func_info and kernel_takes(spec.btf) else None
    info = b"".join(struct.pack("<II", pc, tid) for pc, tid in ps.func_info)
    with KernelProgram(code, isa.ProgType.BPF_PROG_TYPE_SYSCALL, btf=btf, func_info=info,
                       prog_flags=isa.BPF_F_SLEEPABLE) as p:
        # a syscall program's run takes no data, no repeat (bpf_prog_test_run_syscall)
        raw = sysbpf.calls.prog_test_run(p.fd, b"", None, 0, 0, 0, 0)
    assert raw.err == 0
    return struct.unpack("<i", struct.pack("<I", raw.retval & 0xFFFFFFFF))[0]


def _globals(maps) -> dict:
    return {name: m.lookup(bytes(m.key_size)) for name, m in maps.items() if name != "ctxs"}


def runs(ctx: tuple, prog: str, packet: bytes, between=None):
    """(pyebpf's, the kernel's) (setup status, retval, packet, globals) of one object
    whose context is made of ``ctx`` (algo, key, authsize, type); ``between(maps)`` runs
    after the setup."""
    data = compile_object(DECLS + setup_source(*ctx) + prog)
    obj = pyebpf.load(data)
    try:
        try:
            obj.maps["ctxs"].create_crypto_ctx(bytes(4), ctx[0], ctx[1], authsize=ctx[2],
                                               type=ctx[3])
            status = 0
        except MapError as exc:
            status = -exc.errno
        if between is not None:
            between(obj.maps)
        r = obj.program("prog").run(packet)
        ours = (status, r.retval, r.data_out, _globals(obj.maps))
    finally:
        obj.close()
    with load_object(data) as kobj:
        status = kernel_setup(kobj)
        if between is not None:
            between(kobj.maps)
        k = kobj.program("prog").test_run(packet)
        theirs = (status, k.retval_signed, k.data, _globals(kobj.maps))
    count_comparison()
    return ours, theirs


def same(ctx: tuple, prog: str, packet: bytes, between=None):
    """The run alike in both: what it gave."""
    ours, theirs = runs(ctx, prog, packet, between)
    assert ours == theirs
    return ours


def out(glob: dict) -> bytes:
    """The program's ``out`` (its .bss)."""
    return next(v for name, v in glob.items() if name.endswith(".bss"))


def iv(glob: dict) -> bytes:
    """The program's ``iv`` (its .data)."""
    return next(v for name, v in glob.items() if name.endswith(".data"))


def frame(payload: bytes) -> bytes:
    # a local experimental ethertype (0x88b5): the kernel checks no IP header's length
    return bytes(12) + b"\x88\xb5" + payload


def aes(algo: str, key: bytes) -> tuple:
    return (algo, key, 0, "skcipher")


def test_a_tc_program_passing_a_null_iv_loads_as_in_the_kernel():
    # siv__nullable: NULL is KF_ARG_PTR_TO_NULL, not a dynptr (get_kfunc_ptr_arg_type)
    data = compile_object(DECLS + setup_source("ecb(aes)", FIPS_KEY[:16]) +
                          prog_source("encrypt", 16))
    assert verdicts(data) == (None, None)


@pytest.mark.parametrize("key_len", [16, 24, 32])
def test_ecb_aes_encrypts_the_fips_197_block_as_the_kernel_does(key_len):
    status, retval, _, glob = same(aes("ecb(aes)", FIPS_KEY[:key_len]),
                                   prog_source("encrypt", 16), frame(FIPS_PLAIN + bytes(2)))
    assert (status, retval) == (0, 0)
    assert out(glob)[:16].hex() == FIPS_ECB[key_len]


@pytest.mark.parametrize("key_len", [16, 24, 32])
def test_ecb_aes_decrypts_the_fips_197_block_as_the_kernel_does(key_len):
    _, retval, _, glob = same(aes("ecb(aes)", FIPS_KEY[:key_len]), prog_source("decrypt", 16),
                              frame(bytes.fromhex(FIPS_ECB[key_len]) + bytes(2)))
    assert retval == 0
    assert out(glob)[:16] == FIPS_PLAIN


def test_cbc_aes_encrypts_the_sp800_38a_blocks_and_leaves_the_last_as_the_iv():
    _, retval, _, glob = same(aes("cbc(aes)", SP800_KEY), prog_source("encrypt", 64, iv=SP800_IV),
                              frame(SP800_PLAIN))
    assert retval == 0
    assert (out(glob), iv(glob)) == (SP800_CBC, SP800_CBC[-16:])


def test_cbc_aes_decrypts_the_sp800_38a_blocks():
    _, retval, _, glob = same(aes("cbc(aes)", SP800_KEY), prog_source("decrypt", 64, iv=SP800_IV),
                              frame(SP800_CBC))
    assert retval == 0
    assert (out(glob), iv(glob)) == (SP800_PLAIN, SP800_CBC[-16:])


@pytest.mark.parametrize("op", ["encrypt", "decrypt"])
@pytest.mark.parametrize("algo", ["ecb(aes)", "cbc(aes)"])
def test_in_place_on_the_packet_gives_the_kernels_bytes(op, algo):
    iv = SP800_IV if algo == "cbc(aes)" else None
    same(aes(algo, SP800_KEY), prog_source(op, 48, iv=iv, dst_off=OFF), frame(SP800_PLAIN))


@pytest.mark.parametrize("length", [1, 15, 17, 40])
@pytest.mark.parametrize("algo", ["ecb(aes)", "cbc(aes)"])
def test_a_length_not_a_multiple_of_the_block_is_einval_after_the_whole_blocks(length, algo):
    iv = SP800_IV if algo == "cbc(aes)" else None
    _, retval, _, _ = same(aes(algo, SP800_KEY), prog_source("encrypt", length, iv=iv),
                           frame(SP800_PLAIN))
    assert retval == -22


@pytest.mark.parametrize("algo, iv_len", [("cbc(aes)", 8), ("cbc(aes)", 32), ("ecb(aes)", 16)])
def test_an_iv_of_another_size_than_the_algorithms_is_einval(algo, iv_len):
    _, retval, _, _ = same(aes(algo, SP800_KEY),
                           prog_source("encrypt", 16, iv=bytes(iv_len)), frame(SP800_PLAIN))
    assert retval == -22


def test_cbc_without_an_iv_is_einval():
    _, retval, _, _ = same(aes("cbc(aes)", SP800_KEY), prog_source("encrypt", 16),
                           frame(SP800_PLAIN))
    assert retval == -22


def test_a_source_longer_than_the_destination_is_einval():
    _, retval, _, _ = same(aes("ecb(aes)", SP800_KEY), prog_source("encrypt", 32, dst_len=16),
                           frame(SP800_PLAIN))
    assert retval == -22


def test_a_destination_longer_than_the_source_takes_the_sources_length():
    same(aes("ecb(aes)", SP800_KEY), prog_source("encrypt", 16, dst_len=64), frame(SP800_PLAIN))


@pytest.mark.parametrize("ctx", [
    ("ecb(aes)", bytes(15), 0, "skcipher"),       # aes_expandkey: EINVAL
    ("cbc(aes)", bytes(33), 0, "skcipher"),
    ("ecb(aes)", bytes(16), 4, "skcipher"),       # no setauthsize: EOPNOTSUPP
    ("ecb(aes)", bytes(16), 0, "aead"),           # no such type: ENOENT
    ("ecb(cipher_null)", b"\1", 0, "skcipher"),   # its keysize is 0: EINVAL
], ids=["short-key", "long-key", "authsize", "aead", "cipher_null"])
def test_a_refused_context_has_the_kernels_errno_and_the_program_finds_none(ctx):
    status, retval, _, _ = same(ctx, prog_source("encrypt", 16), frame(SP800_PLAIN))
    assert status < 0 and retval == -2


@pytest.mark.parametrize("change", ["update", "delete"])
def test_a_user_space_change_of_the_value_releases_its_context(change):
    # an array's update frees the value's kptrs (bpf_obj_free_fields); its delete is EINVAL
    def update(maps):
        maps["ctxs"].update(bytes(4), bytes(8))

    def delete(maps):
        with pytest.raises(OSError):
            maps["ctxs"].delete(bytes(4))
    _, retval, _, _ = same(aes("ecb(aes)", SP800_KEY), prog_source("encrypt", 16),
                           frame(SP800_PLAIN), {"update": update, "delete": delete}[change])
    assert retval == (-2 if change == "update" else 0)


def test_contexts_replaced_in_a_map_free_their_slots():
    # each replaced context is released, its slot taken again by the next
    obj = pyebpf.load(compile_object(DECLS + prog_source("encrypt", 16)))
    try:
        for n in range(200):
            obj.maps["ctxs"].create_crypto_ctx(bytes(4), "ecb(aes)", bytes([n]) * 16)
        obj.maps["ctxs"].create_crypto_ctx(bytes(4), "ecb(aes)", FIPS_KEY[:16])
        r = obj.program("prog").run(frame(FIPS_PLAIN + bytes(2)))
        glob = _globals(obj.maps)
    finally:
        obj.close()
    assert (r.retval, out(glob)[:16].hex()) == (0, FIPS_ECB[16])


def test_more_than_64_contexts_live_at_once_each_with_its_key():
    # bpf_crypto_ctx_create kzallocs each context: no limit on how many are alive
    n = 200
    source = (DECLS + prog_source("encrypt", 16)).replace(
        "__uint(max_entries, 1)", f"__uint(max_entries, {n})").replace(
        "int k = 0;", f"int k = {n - 1};")
    obj = pyebpf.load(compile_object(source))
    try:
        for i in range(n - 1):
            obj.maps["ctxs"].create_crypto_ctx(struct.pack("<i", i), "ecb(aes)",
                                               bytes([i]) * 16)
        obj.maps["ctxs"].create_crypto_ctx(struct.pack("<i", n - 1), "ecb(aes)",
                                           FIPS_KEY[:16])
        r = obj.program("prog").run(frame(FIPS_PLAIN + bytes(2)))
        glob = _globals(obj.maps)
    finally:
        obj.close()
    assert (r.retval, out(glob)[:16].hex()) == (0, FIPS_ECB[16])


# a syscall program passing ``raw`` as the params and its length as params__sz
RAW_SETUP = r"""
unsigned char raw[%(n)d] = { %(bytes)s };

SEC("syscall") int setup(void *c)
{
    struct bpf_crypto_ctx *cctx;
    int err = 0;

    cctx = bpf_crypto_ctx_create((void *)raw, %(n)d, &err);
    if (!cctx)
        return err;
    bpf_crypto_ctx_release(cctx);
    return 0;
}
"""


def params(type=b"skcipher", algo=b"ecb(aes)", key=bytes(16), key_len=None, authsize=0,
           reserved=b"\0\0") -> bytes:
    """struct bpf_crypto_params, each field as given (key_len: the key's length)."""
    return struct.pack("<14s2s128s256sII", type, reserved, algo, key,
                       len(key) if key_len is None else key_len, authsize)


def create_status(raw: bytes) -> tuple:
    """(pyebpf's, the kernel's) bpf_crypto_ctx_create answer to ``raw``: 0 or -errno."""
    obj = pyebpf.load(compile_object(DECLS + prog_source("encrypt", 16)))
    try:
        obj.maps["ctxs"].create_crypto_ctx_from_params(bytes(4), raw)
        ours = 0
    except MapError as exc:
        ours = -exc.errno
    finally:
        obj.close()
    source = DECLS + RAW_SETUP % {"n": len(raw), "bytes": _c_bytes(raw)}
    with load_object(compile_object(source)) as kobj:
        theirs = kernel_setup(kobj)
    count_comparison()
    return ours, theirs


# each one check of bpf_crypto_ctx_create failing, or the first of two that do
CREATE_CASES = {
    "good": params(),
    "reserved0": params(reserved=b"\1\0"),
    "reserved1": params(reserved=b"\0\1"),
    "reserved-before-type": params(type=b"aead", reserved=b"\1\0"),
    "params-size-short": params()[:-1],
    "params-size-long": params() + bytes(8),
    "params-size-before-type": params(type=b"aead") + bytes(4),
    "type-aead": params(type=b"aead"),
    "type-empty": params(type=b""),
    "type-unterminated": params(type=b"skcipherxxxxxx"),
    "type-before-algo": params(type=b"aead", algo=b"foo"),
    "algo-unknown": params(algo=b"foo"),
    "algo-empty": params(algo=b""),
    "algo-unterminated": params(algo=b"e" * 128),
    "algo-a-cipher": params(algo=b"aes"),
    "algo-uppercase": params(algo=b"ECB(aes)"),
    "algo-before-key-len": params(algo=b"foo", key=b""),
    "algo-after-nul-ignored": params(algo=b"ecb(aes)\0zz"),
    "authsize": params(authsize=16),
    "authsize-before-key-len": params(authsize=16, key=b""),
    "key-len-0": params(key=b""),
    "key-len-257": params(key_len=257),
    "key-len-256": params(key_len=256),
    "key-len-20": params(key=bytes(20)),
    "ecb-aes-generic": params(algo=b"ecb(aes-generic)"),
    "cbc-aes-fixed-time": params(algo=b"cbc(aes-fixed-time)", key=bytes(32)),
    "ctr-aes": params(algo=b"ctr(aes)"),
    "ctr-aes-authsize": params(algo=b"ctr(aes)", authsize=4),
    "ctr-aes-key-len-0": params(algo=b"ctr(aes)", key=b""),
    "xts-aes": params(algo=b"xts(aes)", key=bytes(32)),
    "cts-cbc-aes": params(algo=b"cts(cbc(aes))"),
    "rfc3686-ctr-aes": params(algo=b"rfc3686(ctr(aes))", key=bytes(20)),
    "ecb-cipher-null": params(algo=b"ecb(cipher_null)", key=b"\1"),
    "ecb-cipher-null-driver": params(algo=b"ecb-cipher_null", key=b"\1"),
}


@pytest.mark.parametrize("raw", CREATE_CASES.values(), ids=CREATE_CASES.keys())
def test_bpf_crypto_ctx_create_checks_its_params_in_the_kernels_order(raw):
    ours, theirs = create_status(raw)
    assert ours == theirs


@pytest.mark.parametrize("dst_off", [OFF - 16, OFF - 14, OFF - 2, OFF + 2, OFF + 8, OFF + 16])
@pytest.mark.parametrize("op", ["encrypt", "decrypt"])
@pytest.mark.parametrize("algo", ["ecb(aes)", "cbc(aes)"])
def test_overlapping_source_and_destination_give_the_kernels_bytes(algo, op, dst_off):
    # block by block, each read before it is written, the CBC xor 8 bytes at a time
    iv = SP800_IV if algo == "cbc(aes)" else None
    same(aes(algo, SP800_KEY), prog_source(op, 32, iv=iv, dst_off=dst_off),
         frame(SP800_PLAIN))


CALLS = r"""
SEC("tc") int prog(struct __sk_buff *skb)
{
    struct bpf_dynptr psrc, pdst;
    struct value *v;
    int k = 0;

    v = bpf_map_lookup_elem(&ctxs, &k);
    if (!v)
        return 0;
    bpf_dynptr_from_skb(skb, 0, &psrc);
    bpf_dynptr_from_skb(skb, 0, &pdst);
    %s
    return 0;
}
"""


@pytest.mark.parametrize("body, message", [
    ("struct bpf_crypto_params p = {}; int err; bpf_crypto_ctx_create(&p, sizeof(p), &err);",
     "calling kernel function bpf_crypto_ctx_create is not allowed"),
    ("struct bpf_crypto_ctx *c = bpf_kptr_xchg(&v->ctx, NULL); if (c) "
     "bpf_crypto_ctx_release(c);",
     "calling kernel function bpf_crypto_ctx_release is not allowed"),
    ("return bpf_crypto_encrypt(v->ctx, &psrc, &pdst, NULL);",
     "Possibly NULL pointer passed to trusted arg0"),
    ("struct bpf_crypto_ctx *c = v->ctx; if (c) "
     "return bpf_crypto_decrypt(c, NULL, &pdst, NULL);",
     "Possibly NULL pointer passed to trusted arg1"),
], ids=["create", "release", "maybe-null-ctx", "null-src"])
def test_a_misused_crypto_kfunc_is_refused_as_the_kernel_refuses_it(body, message):
    ours, theirs = verdicts(compile_object(DECLS + CALLS % body))
    assert theirs is not None and message in theirs, theirs
    assert ours is not None and message in ours, (ours, theirs)


def test_a_socket_filter_may_not_call_bpf_crypto_encrypt():
    source = (DECLS + CALLS % "struct bpf_crypto_ctx *c = v->ctx; if (c) "
              "return bpf_crypto_encrypt(c, &psrc, &pdst, NULL);").replace(
        'SEC("tc")', 'SEC("socket")')
    ours, theirs = verdicts(compile_object(source))
    message = "calling kernel function bpf_crypto_encrypt is not allowed"
    assert theirs is not None and message in theirs, theirs
    assert ours is not None and message in ours, (ours, theirs)
