"""Kfunc prototypes as data, and the verifier's kfunc calls (``check_kfunc_call``).

Each :class:`Kfunc` is the kernel's C declaration of the function (as its vmlinux BTF
has it: a test compares them), its ``BTF_ID_FLAGS`` flags (``KF_*``) and the program
types the kernel registers it for (``register_btf_kfunc_id_set``: the common set of
``kernel/bpf/helpers.c`` reaches every type, its generic set SCHED_CLS among others,
``bpf_kfunc_set_skb`` in ``net/core/filter.c`` socket filters and tc, the conntrack
set of ``net/netfilter/nf_conntrack_bpf.c`` SCHED_CLS only).  Argument kinds come from
the declaration as the kernel reads them (``get_kfunc_ptr_arg_type``, the ``__k``,
``__sz``, ``__szk``, ``__ign``, ``__uninit``, ``__opt``, ``__nullable``, ``__str`` name
suffixes).  A ``__str`` argument (``is_kfunc_arg_const_str``) is a constant,
NUL-terminated string in a read-only map value, as a helper's ARG_PTR_TO_CONST_STR
(``check_reg_const_str``, pyebpf/verifier/strings.py).

Open-coded iterators live in stack slots (``mark_stack_slots_iter``): the 8-byte
slots of the iterator hold STACK_ITER bytes and a register recording its kind,
state (active or drained), loop depth and reference id; ``bpf_iter_*_next`` forks
the path as ``process_iter_next_call`` does, and the interpreter prunes at it against
looping ancestors (see ``Interpreter.visited``).
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from errno import EACCES, ENOMEM

from .. import isa
from ..btf import Kind
from ..btf.relo import target_btf
from .conntrack import CT_KFUNCS
from .tasks import TASK_KFUNCS
from .alloc import NEW, REFCOUNT_ACQUIRE
from .dynptrs import SKB, SKB_META, dynptr_rdonly, dynptr_type
from .errnos import Refusal, errno_of
from . import bounds, sockets
from .irqflags import IRQ_KFUNCS, IRQ_LOCK, IRQ_NATIVE
from .lists import LIST_KFUNCS
from .locks import RES_LOCK, RES_LOCK_IRQ, RES_LOCK_KFUNCS
from .rbtree import RBTREE_KFUNCS
from .state import CONST_PTR_TO_MAP, MAYBE_NULL, MEM_RCU, PTR_TO_CTX, PTR_TO_MAP_VALUE, PTR_TO_MEM, PTR_TO_STACK, SCALAR, STACK_INVALID, STACK_ITER, \
    Reg, regsafe, scalar, type_str
from .state import KERNEL_MEM, MEM_ALLOC, MEM_RDONLY, PTR_LEGACY, PTR_TO_BTF_ID, PTR_UNTRUSTED

_P = isa.ProgType
ALL_TYPES = frozenset({_P.BPF_PROG_TYPE_SOCKET_FILTER, _P.BPF_PROG_TYPE_SCHED_CLS,
                       _P.BPF_PROG_TYPE_SCHED_ACT})
SKB_TYPES = ALL_TYPES
CLS_ONLY = frozenset({_P.BPF_PROG_TYPE_SCHED_CLS})
CLS_ACT = frozenset({_P.BPF_PROG_TYPE_SCHED_CLS, _P.BPF_PROG_TYPE_SCHED_ACT})
SYSCALL_ONLY = frozenset({_P.BPF_PROG_TYPE_SYSCALL})
# the arena kfuncs: 6.18 registers them for every type (kernel/bpf/arena.c, kfunc_init:
# BPF_PROG_TYPE_UNSPEC), but the modelled kernel for none (every type is refused
# "calling kernel function bpf_arena_alloc_pages is not allowed": docs/reference.md,
# Arenas); they are KF_SLEEPABLE besides, which no tc or socket program is
ARENA_KFUNC_TYPES = frozenset()

# argument kinds
SCALAR_ARG, CONST, SIZE, IGNORED, CTX, ITER, DYNPTR, MEM, BTF_ID, ANY_PTR, CONST_STR = (
    "scalar", "const", "size", "ignored", "ctx", "iter", "dynptr", "mem", "btf_id", "ptr",
    "const_str")
ALLOC, REFCOUNTED = "alloc", "refcounted_kptr"     # the __alloc, __refcounted_kptr suffixes

# iterator states (enum bpf_iter_state)
ITER_ACTIVE, ITER_DRAINED = 1, 2


@dataclass(frozen=True)
class Arg:
    name: str
    ctype: str                      # without the name, e.g. "struct bpf_iter_num *"
    kind: str


@dataclass(frozen=True)
class Kfunc:
    name: str
    decl: str
    flags: int
    hooks: frozenset
    ret: str
    args: tuple


def _parse_arg(text: str) -> tuple[str, str]:
    fn = re.search(r"\(\*(\w+)\)", text)
    if fn:                                   # a callback: bool (*less)(...)
        return fn.group(1), "callback *"
    m = re.fullmatch(r"(.*?[\s*])(\w+)", text.strip())
    return m.group(2), " ".join(m.group(1).replace("*", " * ").split())


def _split_params(text: str) -> list[str]:
    """Split at the commas outside parentheses."""
    out, depth, cur = [], 0, ""
    for c in text:
        depth += (c == "(") - (c == ")")
        if c == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += c
    return out + [cur]


def _arg_kind(name: str, ctype: str, next_name: str) -> str:
    # a __prog argument is the verifier's to fill with the program's bpf_prog_aux
    # (check_kfunc_args: is_kfunc_arg_prog, skipped as an __ign one is)
    if name.endswith(("__ign", "__prog")):
        return IGNORED
    if name.endswith("__alloc"):
        return ALLOC
    if name.endswith("__refcounted_kptr"):
        return REFCOUNTED
    if not ctype.endswith("*"):
        if name.endswith(("__k", "__szk")):
            return CONST
        return SIZE if name.endswith("__sz") else SCALAR_ARG
    if name.endswith("__str"):
        return CONST_STR
    base = ctype[:-1].replace("const ", "").strip()
    if base == "struct __sk_buff":
        return CTX
    if base.startswith("struct bpf_iter_"):
        return ITER
    if base == "struct bpf_dynptr":
        return DYNPTR
    if next_name.endswith(("__sz", "__szk")):
        return MEM
    return BTF_ID if base.startswith(("struct ", "union ")) else ANY_PTR


def _k(decl: str, flags: int = 0, hooks=ALL_TYPES) -> Kfunc:
    m = re.fullmatch(r"(.*?)\s*\b(\w+)\((.*)\)", decl)
    params = [_parse_arg(p) for p in _split_params(m.group(3))] if m.group(3) != "void" else []
    args = tuple(Arg(n, t, _arg_kind(n, t, params[i + 1][0] if i + 1 < len(params) else ""))
                 for i, (n, t) in enumerate(params))
    return Kfunc(m.group(2), decl, flags, hooks, " ".join(m.group(1).split()), args)


KF = isa


@functools.cache
def _table() -> dict[str, Kfunc]:
    # Built on first use, not at import: parsing the ~130 declarations was ~4 ms of every
    # process's start-up (tcsim's included), and most programs call no kfunc.
    return {k.name: k for k in (
        _k("int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end)", KF.KF_ITER_NEW),
        _k("int *bpf_iter_num_next(struct bpf_iter_num *it)", KF.KF_ITER_NEXT | KF.KF_RET_NULL),
        _k("void bpf_iter_num_destroy(struct bpf_iter_num *it)", KF.KF_ITER_DESTROY),
        _k("void *bpf_cast_to_kern_ctx(void *obj)"),
        _k("void *bpf_rdonly_cast(const void *obj__ign, u32 btf_id__k)"),
        _k("int bpf_dynptr_from_skb(struct __sk_buff *s, u64 flags, "
           "struct bpf_dynptr *ptr__uninit)", hooks=SKB_TYPES),
        _k("void *bpf_dynptr_slice(const struct bpf_dynptr *p, u32 offset, void *buffer__opt, "
           "u32 buffer__szk)", KF.KF_RET_NULL),
        _k("void *bpf_dynptr_slice_rdwr(const struct bpf_dynptr *p, u32 offset, "
           "void *buffer__opt, u32 buffer__szk)", KF.KF_RET_NULL),
        _k("int bpf_dynptr_adjust(const struct bpf_dynptr *p, u32 start, u32 end)"),
        _k("bool bpf_dynptr_is_null(const struct bpf_dynptr *p)"),
        _k("bool bpf_dynptr_is_rdonly(const struct bpf_dynptr *p)"),
        _k("u32 bpf_dynptr_size(const struct bpf_dynptr *p)"),
        _k("int bpf_dynptr_clone(const struct bpf_dynptr *p, struct bpf_dynptr *clone__uninit)"),
        _k("struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *skb_ctx, "
           "struct bpf_sock_tuple *bpf_tuple, u32 tuple__sz, struct bpf_ct_opts *opts, "
           "u32 opts__sz)", KF.KF_ACQUIRE | KF.KF_RET_NULL, CLS_ONLY),
        _k("struct nf_conn___init *bpf_skb_ct_alloc(struct __sk_buff *skb_ctx, "
           "struct bpf_sock_tuple *bpf_tuple, u32 tuple__sz, struct bpf_ct_opts *opts, "
           "u32 opts__sz)", KF.KF_ACQUIRE | KF.KF_RET_NULL, CLS_ONLY),
        _k("struct nf_conn *bpf_ct_insert_entry(struct nf_conn___init *nfct_i)",
           KF.KF_ACQUIRE | KF.KF_RET_NULL | KF.KF_RELEASE, CLS_ONLY),
        _k("void bpf_ct_release(struct nf_conn *nfct)", KF.KF_RELEASE, CLS_ONLY),
        _k("void bpf_ct_set_timeout(struct nf_conn___init *nfct, u32 timeout)",
           KF.KF_TRUSTED_ARGS, CLS_ONLY),
        _k("int bpf_ct_change_timeout(struct nf_conn *nfct, u32 timeout)",
           KF.KF_TRUSTED_ARGS, CLS_ONLY),
        _k("int bpf_ct_set_status(const struct nf_conn___init *nfct, u32 status)",
           KF.KF_TRUSTED_ARGS, CLS_ONLY),
        _k("int bpf_ct_change_status(struct nf_conn *nfct, u32 status)",
           KF.KF_TRUSTED_ARGS, CLS_ONLY),
        _k("int bpf_ct_set_nat_info(struct nf_conn___init *nfct, union nf_inet_addr *addr, "
           "int port, enum nf_nat_manip_type manip)", KF.KF_TRUSTED_ARGS, CLS_ONLY),
        _k("void *bpf_obj_new_impl(u64 local_type_id__k, void *meta__ign)",
           KF.KF_ACQUIRE | KF.KF_RET_NULL, CLS_ONLY),
        _k("void bpf_obj_drop_impl(void *p__alloc, void *meta__ign)", KF.KF_RELEASE, CLS_ONLY),
        _k("void *bpf_refcount_acquire_impl(void *p__refcounted_kptr, void *meta__ign)",
           KF.KF_ACQUIRE | KF.KF_RET_NULL | KF.KF_RCU, CLS_ONLY),
        _k("int bpf_list_push_front_impl(struct bpf_list_head *head, "
           "struct bpf_list_node *node, void *meta__ign, u64 off)", 0, CLS_ONLY),
        _k("int bpf_list_push_back_impl(struct bpf_list_head *head, "
           "struct bpf_list_node *node, void *meta__ign, u64 off)", 0, CLS_ONLY),
        _k("struct bpf_list_node *bpf_list_pop_front(struct bpf_list_head *head)",
           KF.KF_ACQUIRE | KF.KF_RET_NULL, CLS_ONLY),
        _k("struct bpf_list_node *bpf_list_pop_back(struct bpf_list_head *head)",
           KF.KF_ACQUIRE | KF.KF_RET_NULL, CLS_ONLY),
        _k("int bpf_rbtree_add_impl(struct bpf_rb_root *root, struct bpf_rb_node *node, "
           "bool (*less)(struct bpf_rb_node *, const struct bpf_rb_node *), void *meta__ign, "
           "u64 off)", 0, CLS_ONLY),
        _k("struct bpf_rb_node *bpf_rbtree_remove(struct bpf_rb_root *root, "
           "struct bpf_rb_node *node)", KF.KF_ACQUIRE | KF.KF_RET_NULL, CLS_ONLY),
        _k("struct bpf_rb_node *bpf_rbtree_first(struct bpf_rb_root *root)", KF.KF_RET_NULL,
           CLS_ONLY),
        _k("struct bpf_list_node *bpf_list_front(struct bpf_list_head *head)", KF.KF_RET_NULL,
           CLS_ONLY),
        _k("struct bpf_list_node *bpf_list_back(struct bpf_list_head *head)", KF.KF_RET_NULL,
           CLS_ONLY),
        _k("void bpf_rcu_read_lock(void)"),
        _k("void bpf_rcu_read_unlock(void)"),
        _k("void bpf_preempt_disable(void)"),
        _k("void bpf_preempt_enable(void)"),
        _k("void __bpf_trap(void)"),
        _k("int bpf_strcmp(const char *s1__ign, const char *s2__ign)"),
        _k("int bpf_strcasecmp(const char *s1__ign, const char *s2__ign)"),
        _k("int bpf_strchr(const char *s__ign, char c)"),
        _k("int bpf_strchrnul(const char *s__ign, char c)"),
        _k("int bpf_strnchr(const char *s__ign, size_t count, char c)"),
        _k("int bpf_strrchr(const char *s__ign, int c)"),
        _k("int bpf_strlen(const char *s__ign)"),
        _k("int bpf_strnlen(const char *s__ign, size_t count)"),
        _k("int bpf_strspn(const char *s__ign, const char *accept__ign)"),
        _k("int bpf_strcspn(const char *s__ign, const char *reject__ign)"),
        _k("int bpf_strstr(const char *s1__ign, const char *s2__ign)"),
        _k("int bpf_strnstr(const char *s1__ign, const char *s2__ign, size_t len)"),
        _k("int bpf_iter_bits_new(struct bpf_iter_bits *it, const u64 *unsafe_ptr__ign, "
           "u32 nr_words)", KF.KF_ITER_NEW),
        _k("int *bpf_iter_bits_next(struct bpf_iter_bits *it)",
           KF.KF_ITER_NEXT | KF.KF_RET_NULL),
        _k("void bpf_iter_bits_destroy(struct bpf_iter_bits *it)", KF.KF_ITER_DESTROY),
        _k("int bpf_dynptr_copy(struct bpf_dynptr *dst_ptr, u32 dst_off, "
           "struct bpf_dynptr *src_ptr, u32 src_off, u32 size)"),
        _k("int bpf_dynptr_memset(struct bpf_dynptr *p, u32 offset, u32 size, u8 val)"),
        _k("s64 bpf_map_sum_elem_count(const struct bpf_map *map)", KF.KF_TRUSTED_ARGS),
        _k("void bpf_local_irq_save(long unsigned int *flags__irq_flag)"),
        _k("void bpf_local_irq_restore(long unsigned int *flags__irq_flag)"),
        _k("int bpf_res_spin_lock(struct bpf_res_spin_lock *lock)", KF.KF_RET_NULL),
        _k("void bpf_res_spin_unlock(struct bpf_res_spin_lock *lock)"),
        _k("int bpf_res_spin_lock_irqsave(struct bpf_res_spin_lock *lock, "
           "long unsigned int *flags__irq_flag)", KF.KF_RET_NULL),
        _k("void bpf_res_spin_unlock_irqrestore(struct bpf_res_spin_lock *lock, "
           "long unsigned int *flags__irq_flag)"),
        _k("int bpf_probe_read_kernel_dynptr(struct bpf_dynptr *dptr, u32 off, u32 size, "
           "const void *unsafe_ptr__ign)", KF.KF_TRUSTED_ARGS),
        _k("int bpf_probe_read_kernel_str_dynptr(struct bpf_dynptr *dptr, u32 off, "
           "u32 size, const void *unsafe_ptr__ign)", KF.KF_TRUSTED_ARGS),
        _k("int bpf_probe_read_user_dynptr(struct bpf_dynptr *dptr, u32 off, u32 size, "
           "const void *unsafe_ptr__ign)", KF.KF_TRUSTED_ARGS),
        _k("int bpf_probe_read_user_str_dynptr(struct bpf_dynptr *dptr, u32 off, u32 size, "
           "const void *unsafe_ptr__ign)", KF.KF_TRUSTED_ARGS),
        _k("int bpf_copy_from_user_str(void *dst, u32 dst__sz, const void *unsafe_ptr__ign, "
           "u64 flags)", KF.KF_SLEEPABLE),
        _k("int bpf_copy_from_user_dynptr(struct bpf_dynptr *dptr, u32 off, u32 size, "
           "const void *unsafe_ptr__ign)", KF.KF_SLEEPABLE | KF.KF_TRUSTED_ARGS),
        _k("int bpf_copy_from_user_str_dynptr(struct bpf_dynptr *dptr, u32 off, u32 size, "
           "const void *unsafe_ptr__ign)", KF.KF_SLEEPABLE | KF.KF_TRUSTED_ARGS),
        _k("int bpf_copy_from_user_task_dynptr(struct bpf_dynptr *dptr, u32 off, u32 size, "
           "const void *unsafe_ptr__ign, struct task_struct *tsk)",
           KF.KF_SLEEPABLE | KF.KF_TRUSTED_ARGS),
        _k("int bpf_copy_from_user_task_str(void *dst, u32 dst__sz, "
           "const void *unsafe_ptr__ign, struct task_struct *tsk, u64 flags)", KF.KF_SLEEPABLE),
        _k("int bpf_copy_from_user_task_str_dynptr(struct bpf_dynptr *dptr, u32 off, "
           "u32 size, const void *unsafe_ptr__ign, struct task_struct *tsk)",
           KF.KF_SLEEPABLE | KF.KF_TRUSTED_ARGS),
        _k("int bpf_cgroup_read_xattr(struct cgroup *cgroup, const char *name__str, "
           "struct bpf_dynptr *value_p)", KF.KF_RCU),
        _k("struct kmem_cache *bpf_get_kmem_cache(u64 addr)", KF.KF_RET_NULL),
        _k("int bpf_iter_css_new(struct bpf_iter_css *it, "
           "struct cgroup_subsys_state *start, unsigned int flags)",
           KF.KF_ITER_NEW | KF.KF_TRUSTED_ARGS | KF.KF_RCU_PROTECTED),
        _k("struct cgroup_subsys_state *bpf_iter_css_next(struct bpf_iter_css *it)",
           KF.KF_ITER_NEXT | KF.KF_RET_NULL),
        _k("void bpf_iter_css_destroy(struct bpf_iter_css *it)", KF.KF_ITER_DESTROY),
        _k("int bpf_iter_css_task_new(struct bpf_iter_css_task *it, "
           "struct cgroup_subsys_state *css, unsigned int flags)",
           KF.KF_ITER_NEW | KF.KF_TRUSTED_ARGS),
        _k("struct task_struct *bpf_iter_css_task_next(struct bpf_iter_css_task *it)",
           KF.KF_ITER_NEXT | KF.KF_RET_NULL),
        _k("void bpf_iter_css_task_destroy(struct bpf_iter_css_task *it)", KF.KF_ITER_DESTROY),
        _k("int bpf_iter_dmabuf_new(struct bpf_iter_dmabuf *it)",
           KF.KF_ITER_NEW | KF.KF_SLEEPABLE),
        _k("struct dma_buf *bpf_iter_dmabuf_next(struct bpf_iter_dmabuf *it)",
           KF.KF_ITER_NEXT | KF.KF_RET_NULL | KF.KF_SLEEPABLE),
        _k("void bpf_iter_dmabuf_destroy(struct bpf_iter_dmabuf *it)",
           KF.KF_ITER_DESTROY | KF.KF_SLEEPABLE),
        _k("int bpf_iter_kmem_cache_new(struct bpf_iter_kmem_cache *it)",
           KF.KF_ITER_NEW | KF.KF_SLEEPABLE),
        _k("struct kmem_cache *bpf_iter_kmem_cache_next(struct bpf_iter_kmem_cache *it)",
           KF.KF_ITER_NEXT | KF.KF_RET_NULL | KF.KF_SLEEPABLE),
        _k("void bpf_iter_kmem_cache_destroy(struct bpf_iter_kmem_cache *it)",
           KF.KF_ITER_DESTROY | KF.KF_SLEEPABLE),
        _k("int bpf_iter_task_new(struct bpf_iter_task *it, "
           "struct task_struct *task__nullable, unsigned int flags)",
           KF.KF_ITER_NEW | KF.KF_TRUSTED_ARGS | KF.KF_RCU_PROTECTED),
        _k("struct task_struct *bpf_iter_task_next(struct bpf_iter_task *it)",
           KF.KF_ITER_NEXT | KF.KF_RET_NULL),
        _k("void bpf_iter_task_destroy(struct bpf_iter_task *it)", KF.KF_ITER_DESTROY),
        _k("int bpf_iter_task_vma_new(struct bpf_iter_task_vma *it, "
           "struct task_struct *task, u64 addr)", KF.KF_ITER_NEW | KF.KF_RCU),
        _k("struct vm_area_struct *bpf_iter_task_vma_next(struct bpf_iter_task_vma *it)",
           KF.KF_ITER_NEXT | KF.KF_RET_NULL),
        _k("void bpf_iter_task_vma_destroy(struct bpf_iter_task_vma *it)", KF.KF_ITER_DESTROY),
        _k("int bpf_modify_return_test_tp(int nonce)"),
        _k("int bpf_stream_vprintk_impl(int stream_id, const char *fmt__str, "
           "const void *args, u32 len__sz, void *aux__prog)", KF.KF_TRUSTED_ARGS),
        _k("int bpf_task_work_schedule_signal_impl(struct task_struct *task, "
           "struct bpf_task_work *tw, void *map__map, bpf_task_work_callback_t callback, "
           "void *aux__prog)", KF.KF_TRUSTED_ARGS),
        _k("int bpf_task_work_schedule_resume_impl(struct task_struct *task, "
           "struct bpf_task_work *tw, void *map__map, bpf_task_work_callback_t callback, "
           "void *aux__prog)", KF.KF_TRUSTED_ARGS),
        _k("int bpf_wq_init(struct bpf_wq *wq, void *p__map, unsigned int flags)"),
        _k("int bpf_wq_set_callback_impl(struct bpf_wq *wq, int (*callback_fn)(void *, "
           "int *, void *), unsigned int flags, void *aux__prog)"),
        _k("int bpf_wq_start(struct bpf_wq *wq, unsigned int flags)"),
        _k("struct nf_conn___init *bpf_xdp_ct_alloc(struct xdp_md *xdp_ctx, "
           "struct bpf_sock_tuple *bpf_tuple, u32 tuple__sz, struct bpf_ct_opts *opts, "
           "u32 opts__sz)", KF.KF_ACQUIRE | KF.KF_RET_NULL, CLS_ONLY),
        _k("struct nf_conn *bpf_xdp_ct_lookup(struct xdp_md *xdp_ctx, "
           "struct bpf_sock_tuple *bpf_tuple, u32 tuple__sz, struct bpf_ct_opts *opts, "
           "u32 opts__sz)", KF.KF_ACQUIRE | KF.KF_RET_NULL, CLS_ONLY),
        _k("struct bpf_list_node *bpf_list_front(struct bpf_list_head *head)",
           KF.KF_RET_NULL, CLS_ONLY),
        _k("struct bpf_list_node *bpf_list_back(struct bpf_list_head *head)",
           KF.KF_RET_NULL, CLS_ONLY),
        _k("struct bpf_rb_node *bpf_rbtree_root(struct bpf_rb_root *root)",
           KF.KF_RET_NULL, CLS_ONLY),
        _k("struct bpf_rb_node *bpf_rbtree_left(struct bpf_rb_root *root, "
           "struct bpf_rb_node *node)", KF.KF_RET_NULL, CLS_ONLY),
        _k("struct bpf_rb_node *bpf_rbtree_right(struct bpf_rb_root *root, "
           "struct bpf_rb_node *node)", KF.KF_RET_NULL, CLS_ONLY),
        _k("void *bpf_percpu_obj_new_impl(u64 local_type_id__k, void *meta__ign)",
           KF.KF_ACQUIRE | KF.KF_RET_NULL, CLS_ONLY),
        _k("void bpf_percpu_obj_drop_impl(void *p__alloc, void *meta__ign)",
           KF.KF_RELEASE, CLS_ONLY),
        _k("struct task_struct *bpf_task_acquire(struct task_struct *p)",
           KF.KF_ACQUIRE | KF.KF_RCU | KF.KF_RET_NULL, CLS_ONLY),
        _k("void bpf_task_release(struct task_struct *p)", KF.KF_RELEASE, CLS_ONLY),
        _k("struct task_struct *bpf_task_from_pid(s32 pid)",
           KF.KF_ACQUIRE | KF.KF_RET_NULL, CLS_ONLY),
        _k("struct task_struct *bpf_task_from_vpid(s32 vpid)",
           KF.KF_ACQUIRE | KF.KF_RET_NULL, CLS_ONLY),
        _k("struct cgroup *bpf_task_get_cgroup1(struct task_struct *task, int hierarchy_id)",
           KF.KF_ACQUIRE | KF.KF_RCU | KF.KF_RET_NULL, CLS_ONLY),
        _k("long int bpf_task_under_cgroup(struct task_struct *task, "
           "struct cgroup *ancestor)", KF.KF_RCU, CLS_ONLY),
        _k("struct cgroup *bpf_cgroup_acquire(struct cgroup *cgrp)",
           KF.KF_ACQUIRE | KF.KF_RCU | KF.KF_RET_NULL, CLS_ONLY),
        _k("void bpf_cgroup_release(struct cgroup *cgrp)", KF.KF_RELEASE, CLS_ONLY),
        _k("struct cgroup *bpf_cgroup_ancestor(struct cgroup *cgrp, int level)",
           KF.KF_ACQUIRE | KF.KF_RCU | KF.KF_RET_NULL, CLS_ONLY),
        _k("struct cgroup *bpf_cgroup_from_id(u64 cgid)",
           KF.KF_ACQUIRE | KF.KF_RET_NULL, CLS_ONLY),
        _k("int bpf_send_signal_task(struct task_struct *task, int sig, enum pid_type type, "
           "u64 value)", KF.KF_TRUSTED_ARGS, CLS_ONLY),
        _k("void bpf_throw(u64 cookie)", 0, CLS_ONLY),
        _k("struct bpf_key *bpf_lookup_user_key(s32 serial, u64 flags)",
           KF.KF_ACQUIRE | KF.KF_RET_NULL | KF.KF_SLEEPABLE, CLS_ONLY),
        _k("struct bpf_key *bpf_lookup_system_key(u64 id)",
           KF.KF_ACQUIRE | KF.KF_RET_NULL, CLS_ONLY),
        _k("void bpf_key_put(struct bpf_key *bkey)", KF.KF_RELEASE, CLS_ONLY),
        _k("int bpf_sk_assign_tcp_reqsk(struct __sk_buff *s, struct sock *sk, "
           "struct bpf_tcp_req_attrs *attrs, int attrs__sz)", KF.KF_TRUSTED_ARGS, CLS_ONLY),
        _k("void bpf_kfunc_call_test_release(struct prog_test_ref_kfunc *p)",
           KF.KF_RELEASE, CLS_ONLY),
        _k("void bpf_kfunc_call_memb_release(struct prog_test_member *p)",
           KF.KF_RELEASE, CLS_ONLY),
        _k("int bpf_dynptr_from_skb_meta(struct __sk_buff *skb_, u64 flags, "
           "struct bpf_dynptr *ptr__uninit)", 0, CLS_ACT),
        _k("int bpf_crypto_decrypt(struct bpf_crypto_ctx *ctx, "
           "const struct bpf_dynptr *src, const struct bpf_dynptr *dst, "
           "const struct bpf_dynptr *siv__nullable)", KF.KF_RCU, CLS_ACT),
        _k("int bpf_crypto_encrypt(struct bpf_crypto_ctx *ctx, "
           "const struct bpf_dynptr *src, const struct bpf_dynptr *dst, "
           "const struct bpf_dynptr *siv__nullable)", KF.KF_RCU, CLS_ACT),
        # crypto_kfunc_init registers these for BPF_PROG_TYPE_SYSCALL alone: a tc program's
        # call is refused, as the kernel refuses it
        _k("struct bpf_crypto_ctx *bpf_crypto_ctx_create(const struct bpf_crypto_params *params, "
           "u32 params__sz, int *err)", KF.KF_ACQUIRE | KF.KF_RET_NULL | KF.KF_SLEEPABLE,
           SYSCALL_ONLY),
        _k("struct bpf_crypto_ctx *bpf_crypto_ctx_acquire(struct bpf_crypto_ctx *ctx)",
           KF.KF_ACQUIRE | KF.KF_RCU | KF.KF_RET_NULL, SYSCALL_ONLY),
        _k("void bpf_crypto_ctx_release(struct bpf_crypto_ctx *ctx)", KF.KF_RELEASE, SYSCALL_ONLY),
        _k("void *bpf_arena_alloc_pages(void *p__map, void *addr__ign, u32 page_cnt, "
           "int node_id, u64 flags)", KF.KF_TRUSTED_ARGS | KF.KF_SLEEPABLE, ARENA_KFUNC_TYPES),
        _k("void bpf_arena_free_pages(void *p__map, void *ptr__ign, u32 page_cnt)",
           KF.KF_TRUSTED_ARGS | KF.KF_SLEEPABLE, ARENA_KFUNC_TYPES),
        _k("int bpf_arena_reserve_pages(void *p__map, void *ptr__ign, u32 page_cnt)",
           KF.KF_TRUSTED_ARGS | KF.KF_SLEEPABLE, ARENA_KFUNC_TYPES),
    )}


def __getattr__(name: str):
    # KFUNCS, the name -> Kfunc table, for those who import it (tests, tools)
    if name == "KFUNCS":
        return _table()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# the bpf_wq kfuncs: their arguments are the verifier's timer rules (TimerRules.wq_call)
WQ_KFUNCS = frozenset({"bpf_wq_init", "bpf_wq_set_callback_impl", "bpf_wq_start"})
# and so are the task work kfuncs' (TimerRules.task_work_call)
TASK_WORK_KFUNCS = frozenset({"bpf_task_work_schedule_signal_impl",
                              "bpf_task_work_schedule_resume_impl"})
_LOCKS = frozenset({"bpf_rcu_read_lock", "bpf_rcu_read_unlock", "bpf_preempt_disable",
                    "bpf_preempt_enable"})


def _iter_size(kind: str) -> int:
    """sizeof(struct bpf_iter_KIND) in the kernel's BTF: the stack it takes, in whole
    slots (mark_stack_slots_iter)."""
    (t,) = target_btf().by_name(f"bpf_iter_{kind}", Kind.STRUCT)
    return t.size


def _iter_type(arg: Arg) -> str:
    """``num`` for ``struct bpf_iter_num *``."""
    return arg.ctype.replace("const ", "")[len("struct bpf_iter_"):-1].strip()


class KfuncCalls:
    """The kfunc side of :class:`~pyebpf.verifier.interp.Interpreter` (mixed in)."""

    def _kfunc_size_precise(self, st, k, i: int, regs) -> None:
        """check_kfunc_args marks a size or constant argument precise, walking back once
        per check: check_kfunc_mem_size_reg's two check_mem_size_reg calls (a read and a
        write of the buffer, skipped for an optional buffer passed NULL), then once more
        for a constant (``__k``, ``__szk``)."""
        arg = k.args[i]
        walks = 1 if arg.kind == CONST else 0
        if i and k.args[i - 1].kind == MEM and not (
                k.args[i - 1].name.endswith("__opt") and regs[i].is_null()):
            walks += 2
        for _ in range(walks):
            self._needs(st, i + 1)

    def kfunc_call(self, st, pc: int, insn, pending) -> None:
        kid = insn.imm
        if not 0 < kid < isa.N_KFUNC_IDS:
            self.refuse(pc, f"kernel btf_id {kid} is not a function")
        name = isa.KFUNC_NAMES[kid]
        k = _table()[name]
        if self.prog_type not in k.hooks:
            self.refuse(pc, f"calling kernel function {name} is not allowed")
        if name == "__bpf_trap":
            # check_kfunc_call: clang calls it where a variable is used uninitialized
            self.refuse(pc, "unexpected __bpf_trap() due to uninitialized variable?")
        if k.flags & isa.KF_SLEEPABLE:
            # check_kfunc_call, before the arguments: only a path that may sleep (a wq
            # callback's: no socket filter or tc program is sleepable), outside the
            # regions that may not
            if not self.in_sleepable(st):
                self.refuse(pc, f"program must be sleepable to call sleepable kfunc {name}",
                            errno=EACCES)
            if st.rcu_lock:
                self.refuse(pc, f"kernel func {name} is sleepable within rcu_read_lock region")
            if st.preempt_locks:
                self.refuse(pc, f"kernel func {name} is sleepable within non-preemptible "
                                f"region")
        regs = st.cur.regs
        if name in CT_KFUNCS:
            r0 = self.kfunc_return(st, pc, k, self.ct_args(st, pc, k))
            for r in range(1, 6):
                regs[r] = Reg()
            regs[0] = r0 or (Reg() if k.ret == "void" else scalar())
            return
        if name in LIST_KFUNCS:
            for i in range(len(k.args)):
                self.read(st, pc, i + 1)
            r0 = self.list_call(st, pc, name, regs)
            for r in range(1, 6):
                regs[r] = Reg()
            regs[0] = r0 or scalar()
            return
        if name in RBTREE_KFUNCS:
            for i in range(len(k.args)):
                self.read(st, pc, i + 1)
            r0 = self.rbtree_call(st, pc, name, regs, pending)
            for r in range(1, 6):
                regs[r] = Reg()
            regs[0] = r0 or scalar()
            return
        if name in WQ_KFUNCS:
            self.wq_call(st, pc, name, pending)
            for r in range(1, 6):
                regs[r] = Reg()
            regs[0] = scalar()
            return
        if name in TASK_WORK_KFUNCS:
            self.task_work_call(st, pc, k, pending)
            for r in range(1, 6):
                regs[r] = Reg()
            regs[0] = scalar()
            return
        if name in TASK_KFUNCS:
            r0 = self.kfunc_return(st, pc, k, self.task_args(st, pc, k))
            for r in range(1, 6):
                regs[r] = Reg()
            regs[0] = r0 or (Reg() if k.ret == "void" else scalar())
            return
        if name in RES_LOCK_KFUNCS or name in IRQ_KFUNCS:
            self._irq_lock_call(st, pc, name, len(k.args), pending)
            for r in range(1, 6):
                regs[r] = Reg()
            # a lock's success path: check_kfunc_call's __mark_reg_const_zero
            regs[0] = Reg() if k.ret == "void" else scalar(0)
            return
        iter_slot = dynptr = alloc = None
        release = 0
        for i, arg in enumerate(k.args):
            regno = i + 1
            reg = self.read(st, pc, regno)
            nullable = arg.name.endswith("__nullable")
            if arg.kind not in (SCALAR_ARG, SIZE, CONST, IGNORED):
                # check_kfunc_args, for every pointer argument before its kind
                if k.flags & (isa.KF_TRUSTED_ARGS | isa.KF_RCU) and not nullable and \
                        (reg.is_null() or reg.type & MAYBE_NULL):
                    self.refuse(pc, f"Possibly NULL pointer passed to trusted arg{i}")
                if nullable and reg.is_null():
                    continue        # get_kfunc_ptr_arg_type: KF_ARG_PTR_TO_NULL
            if k.flags & isa.KF_RELEASE and reg.ref and arg.kind != IGNORED:
                release = reg.ref           # check_kfunc_args' release_regno
            if arg.kind in (ALLOC, REFCOUNTED):
                self.alloc_arg(pc, name, i, reg, k.flags, arg.kind == REFCOUNTED)
                alloc = reg
            elif arg.kind == ITER:
                if name == "bpf_iter_css_task_new":
                    # check_css_task_iter_allowlist: a tc or socket filter program is
                    # never sleepable
                    self.refuse(pc, "css_task_iter is only allowed in bpf_lsm, bpf_iter and "
                                    "sleepable progs")
                iter_slot = self._iter_arg(st, pc, k, i, arg, reg)
            elif arg.kind in (SCALAR_ARG, SIZE, CONST):
                if reg.type != SCALAR:
                    self.refuse(pc, f"R{regno} is not a scalar")
                if arg.kind == CONST and not reg.is_const:
                    self.refuse(pc, f"R{regno} must be a known constant")
                if self.precision:
                    self._kfunc_size_precise(st, k, i, regs)
            elif arg.kind == BTF_ID and reg.type & 0xFF == PTR_TO_BTF_ID and \
                    not reg.type & MEM_ALLOC and reg.type & (PTR_LEGACY | PTR_UNTRUSTED | MEM_RCU):
                # check_kfunc_args, KF_ARG_PTR_TO_BTF_ID: a kernel struct pointer that is
                # not trusted (is_trusted_reg), RCU only where the kfunc is KF_RCU
                if not k.flags & isa.KF_RCU:
                    self.refuse(pc, f"R{regno} must be referenced or trusted")
                if not reg.type & MEM_RCU:
                    self.refuse(pc, f"R{regno} must be a rcu pointer")
            elif arg.kind == BTF_ID and arg.ctype.endswith("struct bpf_map *") and \
                    reg.type != CONST_PTR_TO_MAP:
                # only a map the program references is a (trusted) struct bpf_map; other
                # values make it memory, which a struct of pointers cannot be
                # (get_kfunc_ptr_arg_type, KF_ARG_PTR_TO_MEM)
                self.refuse(pc, f"arg#{i} pointer type STRUCT bpf_map must point to scalar, "
                                f"or struct with scalar")
            elif arg.kind == BTF_ID and reg.type == PTR_TO_CTX:
                # the program's context is no trusted BTF pointer (check_kfunc_args,
                # KF_ARG_PTR_TO_BTF_ID): another program type's context struct
                self.refuse(pc, f"R{regno} must be referenced or trusted")
            elif arg.kind == BTF_ID and reg.type in sockets.SOCK_STRUCTS:
                # process_kf_arg_ptr_to_btf_id: a socket pointer is the struct its type
                # names (reg2btf_ids), which must hold the argument's at its start
                want = arg.ctype.rsplit("struct ", 1)[-1].rstrip(" *")
                have = target_btf().by_name(sockets.SOCK_STRUCTS[reg.type], Kind.STRUCT)[0]
                if not sockets.holds_struct(have, 0, want):
                    self.refuse(pc, f"kernel function {name} args#{i} expected pointer to "
                                    f"STRUCT {want} but R{regno} has a pointer to STRUCT "
                                    f"{have.name}")
            elif arg.kind == CTX:
                if reg.type != PTR_TO_CTX:
                    self.refuse(pc, f"arg#{i} expected pointer to ctx, but got "
                                    f"{type_str(reg.type)}")
            elif arg.kind == DYNPTR:
                if arg.name.endswith("__uninit") and dynptr is not None:
                    # bpf_dynptr_clone: of the parent's type, holding its reference
                    self.dynptr_arg(st, pc, i, reg, True, dynptr_type(dynptr), dynptr.ref,
                                    dynptr_rdonly(dynptr))
                else:
                    # the type, for an uninitialised one (__uninit): bpf_dynptr_from_skb
                    # makes an skb dynptr, bpf_dynptr_from_skb_meta an skb_meta one
                    dynptr = self.dynptr_arg(st, pc, i, reg, arg.name.endswith("__uninit"),
                                             SKB_META if name == "bpf_dynptr_from_skb_meta"
                                             else SKB)
            elif arg.kind == CONST_STR:
                # check_kfunc_args, KF_ARG_PTR_TO_CONST_STR
                if reg.type != PTR_TO_MAP_VALUE:
                    self.refuse(pc, f"arg#{i} doesn't point to a const string")
                self.const_str(pc, regno, reg)
            elif arg.kind == MEM and name.startswith("bpf_dynptr_slice"):
                self._slice_buffer(st, pc, regno, reg, self.read(st, pc, regno + 1))
        if k.flags & isa.KF_RELEASE:
            if not release:
                self.refuse(pc, f"release kernel function {name} expects refcounted "
                                f"PTR_TO_BTF_ID")
            st.refs.pop(release, None)
            for r in st.all_regs():
                if r.ref == release:
                    r.mark_unknown()
        if name in _LOCKS:
            self._lock_kfunc(st, pc, name)
        btf_ret = self.kfunc_btf_return(st, pc, name)
        if name in NEW or name == REFCOUNT_ACQUIRE:
            btf_ret = self.alloc_return(pc, name, regs[1].value, alloc)
            # is_kfunc_ret_null: an owning argument's bpf_refcount_acquire is not NULL;
            # a NULL-able result takes an id of its own before the reference's
            if name in NEW or alloc.type & MEM_RCU:
                btf_ret.type |= MAYBE_NULL
                btf_ret.id = self.new_id()
            btf_ret.ref = self.new_id()
            st.refs[btf_ret.ref] = pc
            if btf_ret.type & MAYBE_NULL:
                btf_ret.id = btf_ret.ref
        if name.startswith("bpf_dynptr_slice"):
            btf_ret = self.dynptr_slice(pc, name, regs[3], regs[4], dynptr)
        for r in range(1, 6):
            regs[r] = Reg()
        if k.flags & isa.KF_ITER_NEXT:
            self._iter_next(st, pc, k, iter_slot, pending)
        elif k.ret == "void":
            regs[0] = Reg()
        else:
            regs[0] = btf_ret or scalar()

    def _slice_buffer(self, st, pc: int, regno: int, reg: Reg, size: Reg) -> None:
        """bpf_dynptr_slice(_rdwr)'s buffer__opt: NULL, or memory of the constant size
        that follows it, checked as read and then as written (check_kfunc_mem_size_reg),
        so stack holding a dynptr or an iterator is refused.  A NULL buffer's 0 is made
        precise (check_kfunc_args: the 6.18 log walks it back once, before the size),
        as the slice's state depends on there being no buffer."""
        if reg.is_null():
            self._needs(st, regno)
            return
        if reg.type not in (PTR_TO_STACK, PTR_TO_MEM, PTR_TO_MAP_VALUE):
            self.refuse(pc, f"R{regno} type={type_str(reg.type)} expected=fp, map_value, mem")
        if size.type == SCALAR and size.is_const:
            try:
                self.helper_mem(st, pc, regno, reg, size.value, False, True)
                self.helper_mem(st, pc, regno, reg, size.value, True, True)
            except Refusal as exc:
                # check_kfunc_args names the pair after the reason, and returns its errno
                self.refuse(pc, *exc.lines, f"arg#{regno - 1} arg#{regno} memory, len pair "
                                            f"leads to invalid memory access",
                            errno=exc.errno or errno_of(exc.lines[-1]))

    # --- irq flags and bpf_res_spin_lock (check_kfunc_call, check_kfunc_args) -------------
    def _irq_lock_call(self, st, pc: int, name: str, nargs: int, pending) -> None:
        """A bpf_res_spin_lock call first forks the path where it failed: r0 an error
        in [-MAX_ERRNO, -1], nothing taken; then the arguments in order, the lock
        before the irq flag."""
        is_lock = name in ("bpf_res_spin_lock", "bpf_res_spin_lock_irqsave")
        if is_lock:
            failed = self.push(st, pc + 1, pc, pending)
            fregs = failed.cur.regs
            for r in range(1, 6):
                fregs[r] = Reg()
            r0 = scalar()
            r0.smin = r0.s32min = -isa.MAX_ERRNO
            r0.smax = r0.s32max = -1
            bounds.sync(r0)
            fregs[0] = r0
        args = [self.read(st, pc, regno) for regno in range(1, nargs + 1)]
        if name in IRQ_KFUNCS:
            self.irq_flag_arg(st, pc, 0, args[0], name == "bpf_local_irq_save", IRQ_NATIVE)
            return
        irq = nargs == 2
        self.res_lock_arg(st, pc, args[0], RES_LOCK_IRQ if irq else RES_LOCK, is_lock)
        if irq:
            self.irq_flag_arg(st, pc, 1, args[1], is_lock, IRQ_LOCK)

    # --- RCU and preemption regions (check_kfunc_call) -------------------------------------
    def _lock_kfunc(self, st, pc: int, name: str) -> None:
        if name == "bpf_rcu_read_lock":
            if st.rcu_lock:
                self.refuse(pc, f"nested rcu read lock (kernel function {name})")
            st.rcu_lock = True
        elif name == "bpf_rcu_read_unlock":
            if not st.rcu_lock:
                self.refuse(pc, f"unmatched rcu read unlock (kernel function {name})")
            st.rcu_lock = False
            # the RCU pointers of kernel structs the section gave become untrusted (the
            # kernel does this to allocated objects' MEM_RCU too: see docs/kfuncs-table.md)
            for r in st.all_regs():
                if r.type & ~MAYBE_NULL == PTR_TO_BTF_ID | MEM_RCU:
                    r.type = PTR_TO_BTF_ID | PTR_UNTRUSTED
        elif name == "bpf_preempt_disable":
            st.preempt_locks += 1
        else:
            if not st.preempt_locks:
                self.refuse(pc, f"unmatched attempt to enable preemption (kernel function "
                                f"{name})")
            st.preempt_locks -= 1

    def lock_leak(self, st, pc: int, prefix: str) -> None:
        """check_resource_leak's region checks: ``prefix`` (an exit, a tail call) may not
        leave irqs disabled, or an RCU read-side or preemption-disabled region open."""
        self.irq_leak(st, pc, prefix)
        if st.rcu_lock:
            self.refuse(pc, f"{prefix} cannot be used inside bpf_rcu_read_lock-ed region")
        if st.preempt_locks:
            self.refuse(pc, f"{prefix} cannot be used inside bpf_preempt_disable-ed region")

    # --- iterators (process_iter_arg) ---------------------------------------------------
    def _iter_arg(self, st, pc, k: Kfunc, i: int, arg: Arg, reg: Reg):
        kind = _iter_type(arg)
        if reg.type != PTR_TO_STACK:
            self.refuse(pc, f"arg#{i} expected pointer to an iterator on stack")
        if not reg.is_const:
            self.refuse(pc, f"iter_{kind} has to be at a constant offset")
        off = reg.off + reg.smin
        if off % 8:
            self.refuse(pc, f"cannot pass in iter_{kind} at an offset={off}")
        size = _iter_size(kind)
        lo, _hi = self.stack_bounds(pc, i + 1, reg, 0, size, " write to")
        self._note_depth(st, reg, lo)
        frame = self.stack_frame(st, reg)
        # the iterator's slots, the one at its start first (it holds the state)
        addrs = range(lo, lo + size, 8)
        slots = [self._slot(frame, a, create=k.flags & isa.KF_ITER_NEW) for a in addrs]
        slot = slots[0]
        mask = ((1 << size // 8) - 1) << (-lo - size) // 8
        live = slot is not None and slot.kinds[0] == STACK_ITER and slot.spill is not None \
            and slot.spill.size == isa.KFUNC_IDS[f"bpf_iter_{kind}_new"]
        if k.flags & isa.KF_ITER_NEW:
            # is_iter_reg_valid_uninit: no slot of it may belong to an iterator
            if any(s.kinds[0] == STACK_ITER for s in slots):
                self.refuse(pc, f"expected uninitialized iter_{kind} as arg #{i}")
            # process_iter_arg writes each of its slots (check_mem_access, BPF_DW)
            # before marking them: a dynptr there is destroyed, both its slots invalid
            for a in addrs:
                self.destroy_dynptr(st, pc, frame, a)
            marker = Reg(PTR_TO_STACK)
            marker.mark_known(ITER_ACTIVE)
            marker.size = isa.KFUNC_IDS[f"bpf_iter_{kind}_new"]
            marker.ref = self.new_id()
            st.refs[marker.ref] = pc
            self.lv.write(reg.frame, mask)     # mark_stack_slots_iter
            for s in slots:
                s.kinds = [STACK_ITER] * 8
                s.spill = None
            slot.spill = marker
            return slot
        if not live or any(s is None or s.kinds[0] != STACK_ITER for s in slots):
            self.refuse(pc, f"expected an initialized iter_{kind} as arg #{i}")
        self.lv.read(st, reg.frame, pc, mask)      # mark_iter_read
        if k.flags & isa.KF_ITER_DESTROY:
            self.lv.write(reg.frame, mask)
            ref = slot.spill.ref
            st.refs.pop(ref, None)
            for s in slots:
                s.kinds = [STACK_INVALID] * 8
                s.spill = None
            # unmark_stack_slots_iter's release_reference: what next() gave ends too
            for r in st.all_regs():
                if r.ref == ref:
                    r.mark_unknown()
        return slot

    def _iter_next(self, st, pc: int, k: Kfunc, slot, pending) -> None:
        """process_iter_next_call: an active iterator forks a path where it yields (r0
        not NULL, one loop deeper, scalars that changed since the previous iteration
        widened); this path sees it drained (r0 = NULL).  r0 points at an int, or for
        a task or css iterator at the kernel struct it walks, an RCU pointer."""
        if slot.spill.value == ITER_ACTIVE:
            queued = self.push(st, pc + 1, pc, pending, ENOMEM)
            qslot = next(s for f in queued.frames for s in f.stack.values()
                         if s.spill is not None and s.spill.ref == slot.spill.ref)
            qslot.spill.range += 1
            if k.ret.startswith("struct "):
                r0 = self.struct_reg(k.ret[len("struct "):-1].strip())
                r0.type |= MEM_RCU
            else:
                # read-only, and gone with the iterator (its ref_obj_id)
                r0 = Reg(PTR_TO_MEM | KERNEL_MEM | MEM_RDONLY)
                r0.mark_known(0)
                r0.size = 4
                r0.id, r0.ref = self.new_id(), slot.spill.ref
            # the kernel widens after check_kfunc_call has set r0 (a pointer, never
            # widened): the previous r0 takes no part
            queued.cur.regs[0] = r0
            prev = self.loop_entry(st, pc)
            if prev is not None:
                widen_scalars(prev, queued)
        slot.spill.mark_known(ITER_DRAINED)
        st.cur.regs[0] = scalar(0)


def widen_scalars(old, cur) -> None:
    """widen_imprecise_scalars: every scalar (register or spill) not exactly the
    previous iteration's becomes unknown, but for one marked precise in either (where
    precision is not tracked, none is).  Exactly is regs_exact: every bound, the
    32-bit ones too, and ids linked alike, one id map for the whole state."""
    idmap = {}
    # the kernel's order (frames innermost first, registers, then spills by slot):
    # the id map pairs the ids it meets first
    for of, cf in reversed(list(zip(old.frames, cur.frames))):
        pairs = list(zip(of.regs, cf.regs))
        pairs += [(of.stack[spi].spill, cf.stack[spi].spill) for spi in sorted(cf.stack)
                  if spi in of.stack and of.stack[spi].spill is not None and
                  cf.stack[spi].spill is not None]
        for o, c in pairs:
            if o.type == SCALAR and c.type == SCALAR and not o.precise and \
                    not c.precise and not regsafe(o, c, idmap, True):
                c.mark_unknown()


def iter_slot(st, reg: Reg):
    """The stack slot of the iterator ``reg`` points at, or None."""
    if reg.type != PTR_TO_STACK or not reg.is_const or reg.frame >= len(st.frames):
        return None
    addr = reg.off + reg.smin
    s = st.frames[reg.frame].stack.get((-addr - 1) // 8)
    return s if s is not None and s.kinds[0] == STACK_ITER and s.spill is not None else None


def arg_count(insn) -> int:
    """The argument registers a call reads: a kfunc's own count, else all five."""
    if insn.is_kfunc_call and 0 < insn.imm < isa.N_KFUNC_IDS:
        return len(_table()[isa.KFUNC_NAMES[insn.imm]].args)
    return 5


def is_iter_next(insn) -> bool:
    """A call of a kfunc ``bpf_iter_*_next``: a forced checkpoint (visit_insn)."""
    return insn.is_kfunc_call and 0 < insn.imm < isa.N_KFUNC_IDS and \
        _table()[isa.KFUNC_NAMES[insn.imm]].flags & isa.KF_ITER_NEXT != 0
