# The crypto kfuncs (kernel/bpf/crypto.c, crypto/bpf_crypto_skcipher.c):
# bpf_crypto_encrypt and bpf_crypto_decrypt, which tc programs call with a context kept
# in a map's kptr field (struct bpf_crypto_ctx __kptr *).  Included by pyebpf/kfuncs.pxi.
#
# The kernel creates a context only in a BPF_PROG_TYPE_SYSCALL program
# (bpf_crypto_ctx_create, sleepable), which pyebpf does not run: Map.create_crypto_ctx
# does what such a program does in the selftests (crypto_ctx_insert): create one and
# exchange it into a map value's kptr field, releasing the one there.  A context is a
# slot of a fixed table; its address is what the field holds (a kernel object's, outside
# the object arena), its reference count what bpf_crypto_ctx_release_dtor drops when
# the map frees the value (heap.pxi's _obj_release).  The ciphers are the lskcipher
# algorithms ecb(aes) and cbc(aes) (crypto/ecb.c, crypto/cbc.c over the single-block
# "aes" of pyebpf/crypto_aes.h).

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
    CRYPTO_CTX_MAX = 64                 # contexts alive at once
    AES_BLOCK_SIZE = 16
    CRYPTO_ECB_AES = 1
    CRYPTO_CBC_AES = 2

cdef struct CryptoCtx:
    uint32_t usage                      # the reference count; 0: a free slot
    uint32_t mode                       # CRYPTO_ECB_AES, CRYPTO_CBC_AES
    uint32_t siv_len                    # ivsize + statesize (bpf_crypto_ctx_create)
    pyebpf_aes_key key

cdef CryptoCtx _crypto_ctxs[CRYPTO_CTX_MAX]

# struct bpf_crypto_params' sizes (kernel/bpf/crypto.c)
CRYPTO_KEY_MAX = 256
# the algorithms of the "skcipher" type pyebpf models: (mode, ivsize)
_CRYPTO_ALGOS = {"ecb(aes)": (CRYPTO_ECB_AES, 0), "cbc(aes)": (CRYPTO_CBC_AES, AES_BLOCK_SIZE)}


cdef inline CryptoCtx* _crypto_ctx(uint64_t p) noexcept nogil:
    """The context at address ``p``, or NULL for any other address."""
    cdef uintptr_t base = <uintptr_t>&_crypto_ctxs[0]
    if p < base or p >= base + sizeof(_crypto_ctxs) or (p - base) % sizeof(CryptoCtx):
        return NULL
    return <CryptoCtx*><uintptr_t>p


cdef bint crypto_ctx_put(uint64_t p) noexcept nogil:
    """bpf_crypto_ctx_release: one reference fewer (the last frees the slot); whether
    ``p`` is a context at all."""
    cdef CryptoCtx* c = _crypto_ctx(p)
    if c == NULL:
        return False
    if c.usage:
        atomic_dec32(&c.usage)
    return True


def _crypto_ctx_new(str type, str algo, bytes key, uint32_t authsize):
    """bpf_crypto_ctx_create for the params given: the context's address, or -errno as
    the kernel's ``*err``."""
    cdef int i
    cdef CryptoCtx* c
    if type != "skcipher":
        return -ENOENT                      # bpf_crypto_get_type: no such type
    if algo == "ecb(cipher_null)":
        # it exists, but its keysize is 0 and key_len 0 is refused first
        return -EINVAL
    if algo not in _CRYPTO_ALGOS:
        raise MapError(EOPNOTSUPP, f"crypto algorithm {algo!r}: pyebpf models "
                                   f"{', '.join(_CRYPTO_ALGOS)} and ecb(cipher_null) only")
    if authsize:
        return -EOPNOTSUPP                  # an lskcipher has no setauthsize
    if not key or len(key) > CRYPTO_KEY_MAX:
        return -EINVAL
    for i in range(CRYPTO_CTX_MAX):
        c = &_crypto_ctxs[i]
        if atomic_cas(<uint8_t*>&c.usage, 4, 0, 1):
            break
    else:
        return -ENOMEM
    if aes_expandkey(&c.key, <const uint8_t*>key, len(key)):
        c.usage = 0
        return -EINVAL                      # crypto_lskcipher_setkey: aes_expandkey
    c.mode, c.siv_len = _CRYPTO_ALGOS[algo]
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
