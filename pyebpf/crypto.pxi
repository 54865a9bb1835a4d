# The crypto kfuncs (kernel/bpf/crypto.c, crypto/bpf_crypto_skcipher.c):
# bpf_crypto_encrypt and bpf_crypto_decrypt, which tc programs call with a context kept
# in a map's kptr field (struct bpf_crypto_ctx __kptr *).  Included by pyebpf/kfuncs.pxi.
#
# The kernel creates a context only in a BPF_PROG_TYPE_SYSCALL program
# (bpf_crypto_ctx_create, sleepable), which pyebpf does not run: Map.create_crypto_ctx
# does what such a program does in the selftests (crypto_ctx_insert): create one and
# exchange it into a map value's kptr field, releasing the one there.  A context is a
# slot of a table made of blocks of 64 that grows as contexts are created and never
# shrinks (a freed slot is reused; no limit, as the kernel kzallocs each); its address
# is what the field holds (a kernel object's, outside the object arena), its reference
# count what bpf_crypto_ctx_release_dtor drops when the map frees the value (heap.pxi's
# _obj_release).  The ciphers are the lskcipher
# algorithms ecb(aes) and cbc(aes) (crypto/ecb.c, crypto/cbc.c over the single-block
# "aes" of pyebpf/crypto_aes.h).

from struct import Struct as _Struct

cdef extern from "crypto_aes.h":
    ctypedef struct pyebpf_aes_key:
        pass
    int aes_expandkey "pyebpf_aes_expandkey" (pyebpf_aes_key* k, const uint8_t* key,
                                                unsigned len) nogil
    void aes_encrypt "pyebpf_aes_encrypt" (const pyebpf_aes_key* k, uint8_t* out,
                                           const uint8_t* inp) nogil
    void aes_decrypt "pyebpf_aes_decrypt" (const pyebpf_aes_key* k, uint8_t* out,
                                           const uint8_t* inp) nogil

cdef enum:
    CRYPTO_BLOCK = 64                   # contexts per block of the table
    AES_BLOCK_SIZE = 16
    CRYPTO_ECB_AES = 1
    CRYPTO_CBC_AES = 2

cdef struct CryptoCtx:
    uint32_t usage                      # the reference count; 0: a free slot
    uint32_t mode                       # CRYPTO_ECB_AES, CRYPTO_CBC_AES
    uint32_t siv_len                    # ivsize + statesize (bpf_crypto_ctx_create)
    pyebpf_aes_key key

cdef struct CryptoBlock:
    CryptoCtx ctxs[CRYPTO_BLOCK]
    CryptoBlock* next                   # set once, from NULL, when the table grows

# the table's first block; runs read the chain without a lock (a block is linked in
# whole, zeroed, by a compare-and-swap, and never unlinked while the process lives)
cdef CryptoBlock _crypto_table

# struct bpf_crypto_params (kernel/bpf/crypto.c): type[14], reserved[2], algo[128],
# key[256], key_len, authsize
CRYPTO_TYPE_LEN = 14
CRYPTO_ALGO_LEN = 128
CRYPTO_KEY_MAX = 256
_CRYPTO_PARAMS = _Struct("<14s2s128s256sII")
CRYPTO_PARAMS_SIZE = _CRYPTO_PARAMS.size         # 408
# The "skcipher" type's algorithms (crypto/bpf_crypto_skcipher.c: lskcipher ones), as
# the modelled kernel (6.18, x86-64 defconfig) answers bpf_crypto_ctx_create for them,
# each measured: ecb and cbc over the single-block aes are (mode, ivsize); a name that
# crypto_has_skcipher finds but that is no lskcipher, or whose key is always refused,
# fails after the key_len check with the errno given (crypto_alloc_lskcipher's or
# setkey's).  Any other name: has_algo is false, EOPNOTSUPP.
_CRYPTO_ALGOS = {
    "ecb(aes)": (CRYPTO_ECB_AES, 0), "ecb(aes-generic)": (CRYPTO_ECB_AES, 0),
    "ecb(aes-fixed-time)": (CRYPTO_ECB_AES, 0),
    "cbc(aes)": (CRYPTO_CBC_AES, AES_BLOCK_SIZE),
    "cbc(aes-generic)": (CRYPTO_CBC_AES, AES_BLOCK_SIZE),
    "cbc(aes-fixed-time)": (CRYPTO_CBC_AES, AES_BLOCK_SIZE),
    "cbc(ecb(aes-fixed-time))": (CRYPTO_CBC_AES, AES_BLOCK_SIZE),
    # skciphers only (no lskcipher template): crypto_alloc_lskcipher fails
    "ctr(aes)": -EINVAL, "ctr(aes-generic)": -EINVAL, "ctr(aes-fixed-time)": -EINVAL,
    "xts(aes)": -EINVAL, "cts(cbc(aes))": -EINVAL, "cts(cbc(aes-generic))": -EINVAL,
    "cts(cbc(aes-fixed-time))": -EINVAL, "rfc3686(ctr(aes))": -EINVAL,
    "rfc3686(ctr(aes-generic))": -EINVAL,
    # keysize 0: any key_len the earlier check lets through is refused by setkey
    "ecb(cipher_null)": -EINVAL, "ecb(cipher_null-generic)": -EINVAL,
    "cbc(cipher_null)": -EINVAL,
    # a driver name crypto_has_skcipher finds but crypto_alloc_lskcipher does not
    "ecb-cipher_null": -ENOENT,
}


def crypto_params(str type, str algo, bytes key, uint32_t authsize=0) -> bytes:
    """The ``struct bpf_crypto_params`` a program fills for these (each string cut or
    NUL-padded to its field, key_len the key's length)."""
    return _CRYPTO_PARAMS.pack(type.encode(), b"", algo.encode(), key, len(key), authsize)


def crypto_params_algo(bytes params) -> str:
    """The algorithm a ``struct bpf_crypto_params`` names (up to its NUL)."""
    start = CRYPTO_TYPE_LEN + 2
    return params[start:start + CRYPTO_ALGO_LEN].partition(b"\0")[0].decode("latin-1")


cdef CryptoCtx* _crypto_ctx(uint64_t p) noexcept nogil:
    """The context at address ``p``, or NULL for any other address."""
    cdef CryptoBlock* b = &_crypto_table
    cdef uintptr_t base
    while b != NULL:
        base = <uintptr_t>&b.ctxs[0]
        if base <= p < base + sizeof(b.ctxs):
            return <CryptoCtx*><uintptr_t>p if (p - base) % sizeof(CryptoCtx) == 0 else NULL
        b = b.next
    return NULL


cdef bint crypto_ctx_put(uint64_t p) noexcept nogil:
    """bpf_crypto_ctx_release: one reference fewer (the last frees the slot); whether
    ``p`` is a context at all."""
    cdef CryptoCtx* c = _crypto_ctx(p)
    if c == NULL:
        return False
    if c.usage:
        atomic_dec32(&c.usage)
    return True


cdef CryptoCtx* _crypto_slot() except NULL:
    """A free slot, taken (usage 1): the first of the table's, in a new block when all
    are in use."""
    cdef CryptoBlock* b = &_crypto_table
    cdef CryptoBlock* fresh
    cdef int i
    while True:
        for i in range(CRYPTO_BLOCK):
            if atomic_cas(<uint8_t*>&b.ctxs[i].usage, 4, 0, 1):
                return &b.ctxs[i]
        if b.next == NULL:
            fresh = <CryptoBlock*>calloc(1, sizeof(CryptoBlock))
            if fresh == NULL:
                raise MemoryError("crypto context table")
            if not atomic_cas(<uint8_t*>&b.next, 8, 0, <uintptr_t>fresh):
                free(fresh)                 # another thread linked one first
        b = b.next


def _crypto_ctx_new(bytes params):
    """bpf_crypto_ctx_create of ``params`` (a struct bpf_crypto_params, params__sz its
    length), its checks in the kernel's order: the context's address, or -errno as the
    kernel's ``*err``."""
    cdef CryptoCtx* c
    if len(params) < CRYPTO_TYPE_LEN + 2 or params[CRYPTO_TYPE_LEN] or \
            params[CRYPTO_TYPE_LEN + 1] or len(params) != CRYPTO_PARAMS_SIZE:
        return -EINVAL
    type_name, _, algo, key, key_len, authsize = _CRYPTO_PARAMS.unpack(params)
    # strcmp: a type name runs on into the reserved bytes, zero by now; an algorithm
    # name without a NUL is longer than any (CRYPTO_MAX_ALG_NAME) and matches none
    if type_name.partition(b"\0")[0] != b"skcipher":
        return -ENOENT                      # bpf_crypto_get_type
    found = _CRYPTO_ALGOS.get(crypto_params_algo(params)) if b"\0" in algo else None
    if found is None:
        return -EOPNOTSUPP                  # type->has_algo
    if authsize:
        return -EOPNOTSUPP                  # an lskcipher has no setauthsize
    if not key_len or key_len > CRYPTO_KEY_MAX:
        return -EINVAL
    if not isinstance(found, tuple):
        return found                        # alloc_tfm's or setkey's refusal
    c = _crypto_slot()
    if aes_expandkey(&c.key, <const uint8_t*>key, key_len):
        c.usage = 0
        return -EINVAL                      # crypto_lskcipher_setkey: aes_expandkey
    c.mode, c.siv_len = found
    return <uintptr_t>c


cdef int _ecb(CryptoCtx* c, const uint8_t* src, uint8_t* dst, uint32_t n,
              bint decrypt) noexcept nogil:
    """crypto_ecb_crypt: every whole block, then -EINVAL for a part left over."""
    while n >= AES_BLOCK_SIZE:
        if decrypt:
            aes_decrypt(&c.key, dst, src)
        else:
            aes_encrypt(&c.key, dst, src)
        src += AES_BLOCK_SIZE
        dst += AES_BLOCK_SIZE
        n -= AES_BLOCK_SIZE
    return -EINVAL if n else 0


cdef inline void _xor16(uint8_t* a, const uint8_t* b) noexcept nogil:
    """crypto_xor(a, b, 16) as __crypto_xor does it on x86-64: 8 bytes at a time, each
    word of both read before it is written (overlapping a and b give the kernel's
    bytes)."""
    cdef uint64_t x, y
    cdef int i
    for i in range(0, AES_BLOCK_SIZE, 8):
        memcpy(&x, a + i, 8)
        memcpy(&y, b + i, 8)
        x ^= y
        memcpy(a + i, &x, 8)


cdef int _cbc_encrypt(CryptoCtx* c, const uint8_t* src, uint8_t* dst, uint32_t n,
                      uint8_t* iv) noexcept nogil:
    """crypto_cbc_encrypt_segment (in place, crypto_cbc_encrypt_inplace, gives the same
    bytes): ``iv`` ends as the last ciphertext block."""
    while n >= AES_BLOCK_SIZE:
        _xor16(iv, src)
        aes_encrypt(&c.key, dst, iv)
        memcpy(iv, dst, AES_BLOCK_SIZE)
        src += AES_BLOCK_SIZE
        dst += AES_BLOCK_SIZE
        n -= AES_BLOCK_SIZE
    return -EINVAL if n else 0


cdef int _cbc_decrypt(CryptoCtx* c, const uint8_t* src, uint8_t* dst, uint32_t n,
                      uint8_t* iv) noexcept nogil:
    """crypto_cbc_decrypt_segment, or crypto_cbc_decrypt_inplace (from the last block
    back) when src is dst: ``iv`` ends as the last ciphertext block."""
    cdef const uint8_t* prev = iv
    cdef uint8_t* p
    cdef uint8_t last[AES_BLOCK_SIZE]
    cdef uint32_t left = n
    if n < AES_BLOCK_SIZE:
        return -EINVAL if n else 0
    if src != dst:
        while left >= AES_BLOCK_SIZE:
            aes_decrypt(&c.key, dst, src)
            _xor16(dst, prev)
            prev = src
            src += AES_BLOCK_SIZE
            dst += AES_BLOCK_SIZE
            left -= AES_BLOCK_SIZE
        memcpy(iv, prev, AES_BLOCK_SIZE)
    else:
        p = dst + n - n % AES_BLOCK_SIZE - AES_BLOCK_SIZE
        memcpy(last, p, AES_BLOCK_SIZE)
        while True:
            aes_decrypt(&c.key, p, p)
            left -= AES_BLOCK_SIZE
            if left < AES_BLOCK_SIZE:
                break
            _xor16(p, p - AES_BLOCK_SIZE)
            p -= AES_BLOCK_SIZE
        _xor16(p, iv)
        memcpy(iv, last, AES_BLOCK_SIZE)
    return -EINVAL if left else 0


cdef uint64_t _crypto_crypt(Vm* vm, uint64_t ctx, uint64_t src_p, uint64_t dst_p,
                            uint64_t siv_p, bint decrypt) noexcept nogil:
    """bpf_crypto_crypt: -EINVAL for a read-only destination, an empty source or
    destination, a source longer than the destination, an IV dynptr of another size
    than the context's, or bytes no slice reaches; else the cipher's answer."""
    cdef CryptoCtx* c = _crypto_ctx(ctx)
    cdef DynptrKern* src = _dynptr(vm, src_p, ACCESS_READ)
    cdef DynptrKern* dst = _dynptr(vm, dst_p, ACCESS_READ)
    cdef DynptrKern* siv = NULL
    cdef uint32_t src_len, dst_len, siv_len = 0
    cdef const uint8_t* psrc
    cdef uint8_t* pdst
    cdef uint8_t* piv = NULL
    if src == NULL or dst == NULL:
        return 0
    if siv_p:
        siv = _dynptr(vm, siv_p, ACCESS_READ)
        if siv == NULL:
            return 0
        siv_len = _dsize(siv)
    if c == NULL or c.usage == 0 or _drdonly(dst):
        return err(EINVAL)
    src_len, dst_len = _dsize(src), _dsize(dst)
    if src_len == 0 or dst_len == 0 or src_len > dst_len or siv_len != c.siv_len:
        return err(EINVAL)
    psrc = _dynptr_slice_ptr(vm, src, 0, src_len, False)
    pdst = _dynptr_slice_ptr(vm, dst, 0, dst_len, True)
    if siv_len:
        piv = _dynptr_slice_ptr(vm, siv, 0, siv_len, True)
    if vm.status != STATUS_RUNNING:
        return 0
    if psrc == NULL or pdst == NULL or (siv_len and piv == NULL):
        return err(EINVAL)
    if c.mode == CRYPTO_ECB_AES:
        return <uint64_t><int64_t>_ecb(c, psrc, pdst, src_len, decrypt)
    if decrypt:
        return <uint64_t><int64_t>_cbc_decrypt(c, psrc, pdst, src_len, piv)
    return <uint64_t><int64_t>_cbc_encrypt(c, psrc, pdst, src_len, piv)


cdef uint64_t _k_crypto_decrypt(Vm* vm, uint64_t ctx, uint64_t src, uint64_t dst,
                                uint64_t siv, uint64_t r5) noexcept nogil:
    return _crypto_crypt(vm, ctx, src, dst, siv, True)


cdef uint64_t _k_crypto_encrypt(Vm* vm, uint64_t ctx, uint64_t src, uint64_t dst,
                                uint64_t siv, uint64_t r5) noexcept nogil:
    return _crypto_crypt(vm, ctx, src, dst, siv, False)


cdef void register_crypto_kfuncs() except *:
    _kfunc("bpf_crypto_decrypt", _k_crypto_decrypt)
    _kfunc("bpf_crypto_encrypt", _k_crypto_encrypt)
