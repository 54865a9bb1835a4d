# bpf_snprintf_btf: an object printed by its BTF type, as the kernel's
# btf_type_snprintf_show (kernel/bpf/btf.c) prints it.  Included into pyebpf/_core.pyx
# after tracing.pxi, whose memory readers it uses.
#
# The walk follows the kernel's step by step, because its quirks are the output: the
# two passes over a nested struct or array (the first only finds whether anything
# non-zero would be shown), the 32-byte "safe copy" window that decides when memory is
# read again (a read that fails sets the status, and a later one that succeeds clears
# it), bitfields and odd-sized ints printed in hex, char arrays cut at their NUL, and
# the 80-byte type-name buffer.  The types are read from the raw BTF blob of the target
# kernel (a BtfView: type id -> record), as the kernel reads its own.
#
# One difference, documented: %p (a pointer without BTF_F_PTR_RAW) prints the address
# as %px does; the kernel prints a hash of it that no engine can reproduce.

from libc.stdio cimport snprintf

cdef enum:
    BTF_F_COMPACT = 1
    BTF_F_NONAME = 2
    BTF_F_PTR_RAW = 4
    BTF_F_ZERO = 8
    BTF_F_ALL = 15
    BTF_PTR_SIZE = 16              # sizeof(struct btf_ptr): ptr, type_id, flags
    BTF_SHOW_OBJ_SAFE_SIZE = 32
    BTF_SHOW_OBJ_BASE_TYPE_SIZE = 16
    BTF_SHOW_NAME_SIZE = 80
    BTF_SHOW_MAX_ITER = 10
    BTF_MAX_RESOLVE_DEPTH = 32
    K_INT = 1
    K_PTR = 2
    K_ARRAY = 3
    K_STRUCT = 4
    K_UNION = 5
    K_ENUM = 6
    K_TYPEDEF = 8
    K_VOLATILE = 9
    K_CONST = 10
    K_RESTRICT = 11
    K_VAR = 14
    K_DATASEC = 15
    K_TYPE_TAG = 18
    K_ENUM64 = 19
    INT_SIGNED = 1
    INT_CHAR = 2

# copy_from_kernel_nofault_allowed on x86-64, for runs without a machine (packet runs)
cdef uint64_t _X86_TASK_SIZE_MAX = _isa.TASK_SIZE_MAX["x86_64"]
cdef int _SNPRINTF_BTF = _isa.HELPER_IDS["snprintf_btf"]
cdef uint8_t _VOID_RECORD[16]           # void: kind 0, no name, no size
memset(_VOID_RECORD, 0, sizeof(_VOID_RECORD))

ctypedef struct BtfShow:
    Vm* vm
    const BtfView* btf
    uint64_t flags
    Printk o
    bint wrote                     # some btf_show() printed (vsnprintf NUL-terminates)
    uint8_t depth
    uint8_t depth_to_show
    uint8_t depth_check
    bint array_member
    bint array_terminated
    uint16_t array_encoding
    uint32_t type_id
    int status
    const uint8_t* type            # the record of the type being shown, or NULL
    const uint8_t* member          # the btf_member being shown, or NULL
    char name[BTF_SHOW_NAME_SIZE]
    uint32_t obj_size
    uint64_t obj_head
    uint64_t obj_data
    const uint8_t* obj_safe        # the bytes at obj_data (what the kernel copied)


# --- the BTF records ----------------------------------------------------------------

cdef inline uint32_t _u32(const uint8_t* p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v


cdef inline const uint8_t* _btf_type(const BtfView* b, uint32_t type_id) noexcept nogil:
    """btf_type_by_id: the type's record, NULL beyond the last id; void is a record of
    zeros (kind 0)."""
    if type_id >= b.ntypes:
        return NULL
    if type_id == 0:
        return _VOID_RECORD
    return b.data + b.offs[type_id]


cdef inline uint32_t _kind(const uint8_t* t) noexcept nogil:
    return (_u32(t + 4) >> 24) & 0x1F


cdef inline uint32_t _vlen(const uint8_t* t) noexcept nogil:
    return _u32(t + 4) & 0xFFFF


cdef inline bint _kflag(const uint8_t* t) noexcept nogil:
    return _u32(t + 4) >> 31


cdef inline uint32_t _size_type(const uint8_t* t) noexcept nogil:
    return _u32(t + 8)


cdef inline const char* _name(const BtfView* b, uint32_t off) noexcept nogil:
    if off < b.str_len:
        return b.strs + off
    return ""


cdef inline bint _is_modifier(uint32_t kind) noexcept nogil:
    return kind == K_TYPEDEF or kind == K_VOLATILE or kind == K_CONST or \
        kind == K_RESTRICT or kind == K_TYPE_TAG


cdef inline bint _has_size(uint32_t kind) noexcept nogil:
    # btf_type_has_size
    return kind == K_INT or kind == K_STRUCT or kind == K_UNION or kind == K_ENUM or \
        kind == K_DATASEC or kind == 16 or kind == K_ENUM64


cdef const uint8_t* _skip_modifiers(const BtfView* b, uint32_t type_id,
                                    uint32_t* res_id) noexcept nogil:
    """btf_type_skip_modifiers (also what a resolved modifier or VAR points at)."""
    cdef const uint8_t* t = _btf_type(b, type_id)
    cdef int k
    for k in range(BTF_MAX_RESOLVE_DEPTH):
        if t == NULL or not _is_modifier(_kind(t)):
            break
        type_id = _size_type(t)
        t = _btf_type(b, type_id)
    res_id[0] = type_id
    return t


cdef int64_t _resolve_size(const BtfView* b, const uint8_t* t) noexcept nogil:
    """btf_resolve_size: the size of ``t`` through modifiers and arrays, or -EINVAL for
    a type without one (a DATASEC too)."""
    cdef uint64_t nelems = 1, size
    cdef uint32_t kind, n
    cdef int k
    for k in range(BTF_MAX_RESOLVE_DEPTH):
        if t == NULL:
            return -EINVAL
        kind = _kind(t)
        if kind == K_INT or kind == K_STRUCT or kind == K_UNION or kind == K_ENUM or \
                kind == 16 or kind == K_ENUM64 or kind == K_PTR:
            size = 8 if kind == K_PTR else _size_type(t)
            if nelems and size > <uint64_t>0xFFFFFFFFu // nelems:
                return -EINVAL
            return nelems * size
        if _is_modifier(kind):
            t = _btf_type(b, _size_type(t))
        elif kind == K_ARRAY:
            n = _u32(t + 20)
            if nelems and n > <uint64_t>0xFFFFFFFFu // nelems:
                return -EINVAL
            nelems *= n
            t = _btf_type(b, _u32(t + 12))
        else:
            return -EINVAL
    return -EINVAL


# --- output -------------------------------------------------------------------------

cdef inline void _out(BtfShow* s, const char* text) noexcept nogil:
    """btf_show(): one vsnprintf into what is left of the buffer; nothing while the
    first pass over a nested object looks for non-zero values."""
    cdef size_t n, room
    if s.depth_check:
        return
    s.wrote = True
    n = strlen(text)
    room = pk_room(&s.o)
    if room > 1:
        memcpy(s.o.out + s.o.pos, text, n if n < room - 1 else room - 1)
    s.o.pos += n


cdef inline const char* _indent(BtfShow* s) noexcept nogil:
    # 32 spaces at most
    cdef const char* spaces = b"                                "
    if s.flags & BTF_F_COMPACT:
        return b""
    return spaces + 32 - (s.depth if s.depth <= 32 else 32)


cdef inline const char* _newline(BtfShow* s) noexcept nogil:
    if s.flags & BTF_F_COMPACT:
        return ""
    return "\n"


cdef inline const char* _delim(BtfShow* s) noexcept nogil:
    if s.depth == 0:
        return b""
    if s.flags & BTF_F_COMPACT and s.type != NULL and _kind(s.type) == K_UNION:
        return b"|"
    return b","


cdef const char* _show_name(BtfShow* s) noexcept nogil:
    """btf_show_name: "[.member = ](type name)" with a '{' or '[' for aggregates."""
    cdef const char* array_suffixes = b"[][][][][][][][][][]"
    cdef const char* array_suffix = array_suffixes + 20
    cdef const char* ptr_suffixes = b"**********"
    cdef const char* ptr_suffix = ptr_suffixes + 10
    cdef const char* name = NULL
    cdef const char* prefix = b""
    cdef const char* parens = b""
    cdef const char* member = NULL
    cdef bint show_member = False, seen_array = False, seen_ptr = False, seen_typedef = False
    cdef uint32_t type_id = s.type_id, kind
    cdef const uint8_t* t
    cdef int i
    s.name[0] = 0
    if s.array_member:
        return b""
    if s.member != NULL:
        member = _name(s.btf, _u32(s.member))
        show_member = member[0] != 0
        type_id = _u32(s.member + 4)
    t = _btf_type(s.btf, type_id)
    if t == NULL:
        return b""
    i = 0
    while i < BTF_SHOW_MAX_ITER:
        kind = _kind(t)
        if kind == K_TYPEDEF:
            if name == NULL:
                name = _name(s.btf, _u32(t))
            seen_typedef = True
            type_id = _size_type(t)
        elif kind == K_ARRAY:
            seen_array = True
            parens = b"["
            if array_suffix > array_suffixes:
                array_suffix -= 2
            type_id = _u32(t + 12)
        elif kind == K_PTR:
            seen_ptr = True
            if ptr_suffix > ptr_suffixes:
                ptr_suffix -= 1
            type_id = _size_type(t)
        else:
            type_id = 0
        if not type_id:
            break
        # btf_type_skip_qualifiers: modifiers but typedefs
        t = _btf_type(s.btf, type_id)
        while t != NULL and _is_modifier(_kind(t)) and _kind(t) != K_TYPEDEF:
            t = _btf_type(s.btf, _size_type(t))
        if t == NULL:
            return b""
        i += 1
    if i == BTF_SHOW_MAX_ITER:
        return b""
    if name == NULL:
        name = _name(s.btf, _u32(t))
    kind = _kind(t)
    if kind == K_STRUCT or kind == K_UNION:
        prefix = "struct"
        if kind == K_UNION:
            prefix = "union"
        if not seen_array:
            parens = b"{"
    elif kind == K_ENUM or kind == K_ENUM64:
        prefix = b"enum"
    if seen_ptr:
        parens = b""
    if seen_typedef:
        prefix = b""
    cdef const char* empty = ""
    cdef const char* space = " "
    cdef const char* dot = "."
    cdef const char* equals = " = "
    if s.flags & BTF_F_NONAME:
        snprintf(s.name, BTF_SHOW_NAME_SIZE, "%s", parens)
    else:
        snprintf(s.name, BTF_SHOW_NAME_SIZE, "%s%s%s(%s%s%s%s%s%s)%s",
                 dot if show_member else empty, member if show_member else empty,
                 equals if show_member else empty, prefix,
                 space if prefix[0] and name[0] else empty, name,
                 space if ptr_suffix[0] else empty, ptr_suffix, array_suffix, parens)
    return s.name


cdef void _show_value(BtfShow* s, const char* value, bint nonzero) noexcept nogil:
    """btf_show_type_value: indent, name, the value, delimiter, newline; a zero value
    only with BTF_F_ZERO or at the top."""
    cdef char line[BTF_SHOW_NAME_SIZE + 128]
    if nonzero or s.flags & BTF_F_ZERO or s.depth == 0:
        if not s.depth_check:
            snprintf(line, sizeof(line), "%s%s%s%s%s", _indent(s), _show_name(s), value,
                     _delim(s), _newline(s))
            _out(s, line)
        if s.depth > s.depth_to_show:
            s.depth_to_show = s.depth


# --- memory: the safe copy ------------------------------------------------------------

cdef int _copy_nofault(Vm* vm, uint64_t addr, int64_t size, const uint8_t** out) noexcept nogil:
    """copy_from_kernel_nofault of [addr, addr+size): 0 with ``out`` the bytes, or
    -ERANGE (a user or non-canonical address on x86-64) or -EFAULT (nothing there)."""
    cdef const uint8_t* q
    cdef uint64_t limit
    if size < 0:
        size = 0
    q = _own_region(vm, addr, <uint64_t>size)
    if q != NULL:
        out[0] = q
        return 0
    if vm.world == NULL or vm.world.kernel_range_check:
        limit = vm.world.task_size if vm.world != NULL else _X86_TASK_SIZE_MAX
        if addr < limit + 4096 or (addr >> 47) != 0x1FFFF:
            return -ERANGE
    if size == 0:
        out[0] = <const uint8_t*>vm.stack
        return 0
    if vm.world != NULL:
        q = _image(vm.world.kmem, vm.world.nkmem, addr, <uint64_t>size)
    if q == NULL:
        return -EFAULT
    out[0] = q
    return 0


cdef const uint8_t* _obj_safe(BtfShow* s, const uint8_t* t, uint64_t data) noexcept nogil:
    """btf_show_obj_safe: the bytes at ``data``, copied again (at most 32 bytes, not
    past the top object) when the last copy does not hold the next base value."""
    cdef int64_t size = _resolve_size(s.btf, t), left, want
    cdef const uint8_t* q = NULL
    if size < 0:
        s.status = <int>size
        return NULL
    if s.depth == 0:
        s.obj_size = <uint32_t>size
        s.obj_head = data
    else:
        want = size if size < BTF_SHOW_OBJ_BASE_TYPE_SIZE else BTF_SHOW_OBJ_BASE_TYPE_SIZE
        if s.obj_safe != NULL and data >= s.obj_data and \
                data + want < s.obj_data + BTF_SHOW_OBJ_SAFE_SIZE:
            return s.obj_safe + (data - s.obj_data)
    left = <int64_t>(s.obj_head + s.obj_size - data)
    if left > BTF_SHOW_OBJ_SAFE_SIZE:
        left = BTF_SHOW_OBJ_SAFE_SIZE
    s.status = _copy_nofault(s.vm, data, left, &q)
    if s.status:
        return NULL
    s.obj_data = data
    s.obj_safe = q
    return q


cdef inline const uint8_t* _start_type(BtfShow* s, const uint8_t* t, uint32_t type_id,
                                       uint64_t data) noexcept nogil:
    s.type = t
    s.type_id = type_id
    s.name[0] = 0
    return _obj_safe(s, t, data)


cdef inline void _end_type(BtfShow* s) noexcept nogil:
    s.type = NULL
    s.type_id = 0
    s.name[0] = 0


cdef const uint8_t* _start_aggr(BtfShow* s, const uint8_t* t, uint32_t type_id,
                                uint64_t data) noexcept nogil:
    cdef const uint8_t* safe = _start_type(s, t, type_id, data)
    cdef char line[BTF_SHOW_NAME_SIZE + 64]
    if safe == NULL:
        return NULL
    if not s.depth_check:
        snprintf(line, sizeof(line), "%s%s%s", _indent(s), _show_name(s), _newline(s))
        _out(s, line)
    s.depth += 1
    return safe


cdef void _end_aggr(BtfShow* s, const char* suffix) noexcept nogil:
    cdef char line[64]
    s.depth -= 1
    if not s.depth_check:
        snprintf(line, sizeof(line), "%s%s%s%s", _indent(s), suffix, _delim(s), _newline(s))
        _out(s, line)
    _end_type(s)


# --- the kinds ------------------------------------------------------------------------

cdef void _int128_print(BtfShow* s, uint64_t lower, uint64_t upper) noexcept nogil:
    cdef char value[40]
    if upper == 0:
        snprintf(value, sizeof(value), "0x%llx", <unsigned long long>lower)
        _show_value(s, value, lower != 0)
    else:
        snprintf(value, sizeof(value), "0x%llx%016llx", <unsigned long long>upper,
                 <unsigned long long>lower)
        _show_value(s, value, True)


cdef void _bitfield_show(BtfShow* s, const uint8_t* data, uint32_t bits_offset,
                         uint32_t nr_bits) noexcept nogil:
    """btf_bitfield_show: ``nr_bits`` from bit ``bits_offset`` on, printed in hex."""
    cdef uint64_t num[2]
    cdef uint32_t nr_copy_bits = nr_bits + bits_offset
    cdef uint32_t left = 128 - nr_copy_bits, right = 128 - nr_bits
    cdef uint64_t lo, hi
    num[0] = num[1] = 0
    memcpy(num, data, (nr_copy_bits + 7) // 8)
    lo, hi = num[0], num[1]
    # btf_int128_shift: left by ``left`` then right by ``right``, over 128 bits
    if left >= 64:
        hi, lo = lo << (left - 64), 0
    elif left:
        hi, lo = (hi << left) | (lo >> (64 - left)), lo << left
    if right >= 64:
        lo, hi = hi >> (right - 64), 0
    elif right:
        lo, hi = (lo >> right) | (hi << (64 - right)), hi >> right
    _int128_print(s, lo, hi)


cdef inline bint _isprint(uint8_t c) noexcept nogil:
    # the kernel's ctype is Latin-1: 0xa0-0xff print too
    return 32 <= c <= 126 or c >= 0xa0


cdef void _int_show(BtfShow* s, const uint8_t* t, uint32_t type_id, uint64_t data,
                    uint32_t bits_offset) noexcept nogil:
    cdef uint32_t word = _u32(t + 12)
    cdef uint32_t encoding = (word >> 24) & 0xF, int_off = (word >> 16) & 0xFF
    cdef uint32_t nr_bits = word & 0xFF, total
    cdef bint sign = encoding & INT_SIGNED
    cdef const uint8_t* p = _start_type(s, t, type_id, data)
    cdef char value[48]
    cdef uint64_t u
    cdef int64_t v
    if p == NULL:
        return
    if bits_offset or int_off or nr_bits % 8 or not (
            nr_bits == 8 or nr_bits == 16 or nr_bits == 32 or nr_bits == 64 or
            nr_bits == 128):
        total = bits_offset + int_off           # btf_int_bits_show
        _bitfield_show(s, p + total // 8, total % 8, nr_bits)
    elif nr_bits == 128:
        memcpy(&u, p, 8)
        memcpy(&v, p + 8, 8)
        _int128_print(s, u, <uint64_t>v)
    elif nr_bits == 8 and s.array_encoding == INT_CHAR and (
            s.array_terminated or p[0] == 0 or _isprint(p[0])):
        # a char array: cut at its NUL, printable bytes as characters
        if s.array_terminated:
            pass
        elif p[0] == 0:
            s.array_terminated = True
        else:
            snprintf(value, sizeof(value), "'%c'", <char>p[0])
            _show_value(s, value, True)
    else:
        u = _load(p, nr_bits // 8)
        if sign:
            v = <int64_t>(u << (64 - nr_bits)) >> (64 - nr_bits)
            snprintf(value, sizeof(value), "%lld", <long long>v)
        else:
            snprintf(value, sizeof(value), "%llu", <unsigned long long>u)
        _show_value(s, value, u != 0)
    _end_type(s)


cdef void _ptr_show(BtfShow* s, const uint8_t* t, uint32_t type_id, uint64_t data) noexcept nogil:
    cdef const uint8_t* p = _start_type(s, t, type_id, data)
    cdef char value[40]
    cdef uint64_t u
    if p == NULL:
        return
    memcpy(&u, p, 8)
    # "0x%px" (BTF_F_PTR_RAW) or "0x%p": both 16 zero-padded hex digits here
    snprintf(value, sizeof(value), "0x%016llx", <unsigned long long>u)
    _show_value(s, value, u != 0)
    _end_type(s)


cdef void _enum_show(BtfShow* s, const uint8_t* t, uint32_t type_id, uint64_t data) noexcept nogil:
    """btf_enum_show: the enumerator's name, else the number (reads an int whatever
    the enum's size, as the kernel does)."""
    cdef const uint8_t* p = _start_type(s, t, type_id, data)
    cdef uint32_t i, n = _vlen(t)
    cdef int32_t v
    cdef char value[24]
    if p == NULL:
        return
    memcpy(&v, p, 4)
    for i in range(n):
        if <uint32_t>v == _u32(t + 12 + 8 * i + 4):
            _show_value(s, _name(s.btf, _u32(t + 12 + 8 * i)), True)
            _end_type(s)
            return
    if _kflag(t):
        snprintf(value, sizeof(value), "%d", v)
    else:
        snprintf(value, sizeof(value), "%u", <uint32_t>v)
    _show_value(s, value, v != 0)
    _end_type(s)


cdef void _enum64_show(BtfShow* s, const uint8_t* t, uint32_t type_id, uint64_t data) noexcept nogil:
    cdef const uint8_t* p = _start_type(s, t, type_id, data)
    cdef uint32_t i, n = _vlen(t)
    cdef uint64_t v
    cdef char value[24]
    if p == NULL:
        return
    memcpy(&v, p, 8)
    for i in range(n):
        if v == (_u32(t + 12 + 12 * i + 4) | (<uint64_t>_u32(t + 12 + 12 * i + 8) << 32)):
            _show_value(s, _name(s.btf, _u32(t + 12 + 12 * i)), True)
            _end_type(s)
            return
    if _kflag(t):
        snprintf(value, sizeof(value), "%lld", <long long>v)
    else:
        snprintf(value, sizeof(value), "%llu", <unsigned long long>v)
    _show_value(s, value, v != 0)
    _end_type(s)


cdef void _array_body(BtfShow* s, const uint8_t* t, uint32_t type_id, uint64_t data,
                      uint32_t bits_offset, int level) noexcept nogil:
    """__btf_array_show.  An element without a size of its own (a pointer, an array)
    does not advance: the kernel prints the first one nelems times."""
    cdef uint32_t elem_id = _u32(t + 12), nelems = _u32(t + 20), i, res, elem_size = 0
    cdef uint32_t encoding = 0
    cdef const uint8_t* elem = _skip_modifiers(s.btf, elem_id, &res)
    if elem != NULL and _has_size(_kind(elem)):
        elem_size = _size_type(elem)
    if elem != NULL and _kind(elem) == K_INT:
        encoding = (_u32(elem + 12) >> 24) & 0xF
        if elem_size == 1:
            encoding = INT_CHAR
    s.array_encoding = <uint16_t>encoding
    s.array_terminated = False
    if _start_aggr(s, t, type_id, data) == NULL:
        return
    if elem != NULL:
        for i in range(nelems):
            s.array_member = True
            s.member = NULL
            _show(s, elem, elem_id, data, bits_offset, level + 1)
            data += elem_size
            s.array_member = False
            s.member = NULL
            if s.array_terminated:
                break
    s.array_encoding = 0
    s.array_terminated = False
    _end_aggr(s, b"]")


cdef void _struct_body(BtfShow* s, const uint8_t* t, uint32_t type_id, uint64_t data,
                       int level) noexcept nogil:
    """__btf_struct_show: each member, a bitfield printed from its storage unit."""
    cdef uint32_t i, n = _vlen(t), off, bitfield_size, mtype
    cdef bint kflag = _kflag(t)
    cdef const uint8_t* m
    cdef const uint8_t* mt
    cdef const uint8_t* p
    if _start_aggr(s, t, type_id, data) == NULL:
        return
    for i in range(n):
        m = t + 12 + 12 * i
        mtype = _u32(m + 4)
        mt = _btf_type(s.btf, mtype)
        s.member = m
        off = _u32(m + 8)
        bitfield_size = off >> 24 if kflag else 0
        if kflag:
            off &= 0xFFFFFF
        if bitfield_size:
            p = _start_type(s, mt, mtype, data + off // 8)
            if p != NULL:
                _bitfield_show(s, p, off % 8, bitfield_size)
            _end_type(s)
        elif mt != NULL:
            _show(s, mt, mtype, data + off // 8, off % 8, level + 1)
        s.member = NULL
    _end_aggr(s, b"}")


cdef void _aggr_show(BtfShow* s, const uint8_t* t, uint32_t type_id, uint64_t data,
                     uint32_t bits_offset, int level) noexcept nogil:
    """btf_struct_show and btf_array_show: below the top and without BTF_F_ZERO, a
    first pass (printing nothing) finds whether any value in it is non-zero."""
    cdef const uint8_t* m = s.member
    cdef bint is_array = _kind(t) == K_ARRAY
    if s.depth > 0 and not s.flags & BTF_F_ZERO:
        if not s.depth_check:
            s.depth_check = s.depth + 1
            s.depth_to_show = 0
        if is_array:
            _array_body(s, t, type_id, data, bits_offset, level)
        else:
            _struct_body(s, t, type_id, data, level)
        s.member = m
        if s.depth_check != s.depth + 1:
            return
        s.depth_check = 0
        if s.depth_to_show <= s.depth:
            return
    if is_array:
        _array_body(s, t, type_id, data, bits_offset, level)
    else:
        _struct_body(s, t, type_id, data, level)


cdef void _show(BtfShow* s, const uint8_t* t, uint32_t type_id, uint64_t data,
                uint32_t bits_offset, int level) noexcept nogil:
    """btf_type_ops(t)->show."""
    cdef uint32_t kind = _kind(t), res
    cdef char line[40]
    if level > 64:          # BTF_MAX_RESOLVE_DEPTH-deep nesting only in corrupt BTF
        return
    if _is_modifier(kind) or kind == K_VAR:
        # btf_modifier_show, btf_var_show: the resolved type, under its own id
        t = _skip_modifiers(s.btf, _size_type(t), &res)
        if t == NULL:
            return
        type_id = res
        kind = _kind(t)
        if _is_modifier(kind):
            return
    if kind == K_INT:
        _int_show(s, t, type_id, data, bits_offset)
    elif kind == K_PTR:
        _ptr_show(s, t, type_id, data)
    elif kind == K_ARRAY or kind == K_STRUCT or kind == K_UNION:
        _aggr_show(s, t, type_id, data, bits_offset, level)
    elif kind == K_ENUM:
        _enum_show(s, t, type_id, data)
    elif kind == K_ENUM64:
        _enum64_show(s, t, type_id, data)
    elif kind == K_DATASEC:
        # btf_datasec_show: btf_resolve_size has no size for a section: -EINVAL
        _start_type(s, t, type_id, data)
    else:
        # btf_df_show: FWD, FUNC, FUNC_PROTO, FLOAT, DECL_TAG (and void)
        snprintf(line, sizeof(line), "<unsupported kind:%u>", kind)
        _out(s, line)


cdef uint64_t bpf_snprintf_btf(Vm* vm, uint64_t str, uint64_t str_size, uint64_t ptr,
                               uint64_t btf_ptr_size, uint64_t flags) noexcept nogil:
    """bpf_snprintf_btf: bpf_btf_printf_prepare's checks (flags, the btf_ptr's size, a
    type id the target BTF has), then btf_type_snprintf_show into ``str``: the length
    the whole text has (without the NUL), or the status of the last failed read."""
    cdef uint8_t* out = _mem(vm, str, <uint32_t>str_size, ACCESS_WRITE)
    cdef const uint8_t* bp
    cdef const uint8_t* t
    cdef uint64_t obj
    cdef uint32_t type_id
    cdef BtfShow s
    if out == NULL:
        return 0
    bp = _mem(vm, ptr, <uint32_t>btf_ptr_size, ACCESS_READ)
    if bp == NULL:
        return 0
    if flags & ~(<uint64_t>BTF_F_ALL) or btf_ptr_size != BTF_PTR_SIZE:
        return err(EINVAL)
    if vm.prog == NULL or vm.prog.btf == NULL:
        return err(EINVAL)
    memcpy(&obj, bp, 8)
    type_id = _u32(bp + 8)
    if type_id == 0:
        return err(EINVAL)
    t = _btf_type(vm.prog.btf, type_id)
    if type_id >> 31 or t == NULL:
        return err(ENOENT)
    memset(&s, 0, sizeof(BtfShow))
    s.vm, s.btf, s.flags = vm, vm.prog.btf, flags
    pk_init(&s.o, <char*>out, <uint32_t>str_size)
    _show(&s, t, type_id, obj, 0, 0)
    if s.wrote:
        pk_end(&s.o)
    if s.status:
        return <uint64_t><int64_t>s.status
    return <uint64_t><int64_t><int32_t>s.o.pos


@cython.final
cdef class BtfImage:
    """A target BTF (:class:`pyebpf.btf.Btf`) as a BtfView: its raw blob and each type's
    record offset, made once per Btf."""
    cdef BtfView view
    cdef bytes raw
    cdef object offs

    def __init__(self, btf):
        cdef Py_ssize_t hdr_len, str_off
        from .btf import Btf
        from .btf.writer import encode
        raw = getattr(btf, "raw", None)
        if raw is None:
            raw = encode(btf.types[1:])
            btf = Btf.parse(raw)
        self.raw = raw
        hdr_len, str_off, str_len = _u32_at(raw, 4), _u32_at(raw, 16), _u32_at(raw, 20)
        self.offs = _array.array("I", [0] + [t.offset for t in btf.types[1:]])
        self.view.data = <const uint8_t*>(<const char*>self.raw)
        self.view.ntypes = len(self.offs)
        self.view.strs = <const char*>self.raw + hdr_len + str_off
        self.view.str_len = <uint32_t>str_len
        self._bind()

    cdef void _bind(self):
        cdef const uint32_t[::1] offs = self.offs
        self.view.offs = &offs[0]


def _u32_at(bytes raw, Py_ssize_t at):
    return int.from_bytes(raw[at:at + 4], "little")


_BTF_IMAGES = {}     # id(Btf) -> (weak reference to it, its BtfImage)


cdef BtfImage btf_image(object btf):
    """The BtfView of the target BTF ``btf`` (what pyebpf.btf.relo.target_btf takes)."""
    from .btf.relo import target_btf
    b = target_btf(btf)
    entry = _BTF_IMAGES.get(id(b))
    if entry is not None and entry[0]() is b:
        return <BtfImage>entry[1]
    image = BtfImage(b)
    key = id(b)
    _BTF_IMAGES[key] = (_weakref.ref(b, lambda _, key=key, images=_BTF_IMAGES:
                                     images.pop(key, None)), image)
    return image
