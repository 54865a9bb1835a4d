# bpf_rb_root fields of map values and the rbtree kfuncs (kernel/bpf/helpers.c).
# Included into pyebpf/kfuncs.pxi, after lists.pxi.
#
# The layouts are the kernel's: a struct bpf_rb_root is a struct rb_root_cached
# { rb_node; rb_leftmost } (16 bytes, all zeroes when empty); a struct bpf_rb_node is
# struct bpf_rb_node_kern { struct rb_node { __rb_parent_color; rb_right; rb_left };
# void *owner } (32 bytes), owner the root it is in or NULL.  The tree is a red-black
# tree balanced as lib/rbtree.c balances one (__rb_insert, __rb_erase_augmented,
# ____rb_erase_color): the shape bpf_rbtree_root/_left/_right show, and the order
# bpf_rbtree_first and bpf_rbtree_remove give, are the kernel's for the same adds.
#
# As for lists (lists.pxi), roots sit in map values, nodes in arena objects, only these
# functions write the links, and the root says where in its objects the node is (the
# program's map that holds it, from the __contains tag).  A program loaded without the
# verifier may have stored anything in a root or a node: every link is checked to be a
# whole node of the arena before it is followed, and a walk stops after RB_MAX_STEPS;
# a tree whose links are not the engine's is emptied (its objects are leaked, never
# touched again), and the operation fails as on an empty tree.

cdef extern from *:
    """
    typedef struct pyebpf_rb {
        uint64_t pc;                    /* the parent's address | the colour (1: black) */
        struct pyebpf_rb* right;
        struct pyebpf_rb* left;
        uint64_t owner;
    } pyebpf_rb;
    typedef struct { pyebpf_rb* node; pyebpf_rb* leftmost; } pyebpf_rb_root;

    /* the arena's bounds: a link outside them, or not 8-aligned, is not the engine's */
    static uint64_t pyebpf_rb_lo, pyebpf_rb_hi;
    #define RB_MAX_STEPS 256    /* twice the height of any tree the arena can hold, and more */
    #define RB_BAD(p) ((p) && ((uint64_t)(p) % 8 || (uint64_t)(p) < pyebpf_rb_lo || \
                               (uint64_t)(p) + sizeof(pyebpf_rb) > pyebpf_rb_hi))
    #define RB_PARENT(n) ((pyebpf_rb*)((n)->pc & ~3ULL))
    #define RB_BLACK_(n) ((n)->pc & 1)
    #define RB_RED_(n) ((n) && !RB_BLACK_(n))

    static inline void rb_set_pc(pyebpf_rb* n, pyebpf_rb* p, uint64_t black) {
        n->pc = (uint64_t)p | black;
    }
    static inline void rb_set_parent(pyebpf_rb* n, pyebpf_rb* p) {
        n->pc = (uint64_t)p | (n->pc & 1);
    }

    /* ``old``'s place under ``parent`` (or the root's) is ``new``'s */
    static inline void rb_change_child(pyebpf_rb_root* r, pyebpf_rb* parent, pyebpf_rb* old,
                                       pyebpf_rb* new_) {
        if (!parent)
            r->node = new_;
        else if (parent->left == old)
            parent->left = new_;
        else
            parent->right = new_;
    }

    /* ``x`` goes down to the left, its right child up into its place; 0 (nothing
       written) when a link it would follow is not the engine's */
    static int rb_rotate_left(pyebpf_rb_root* r, pyebpf_rb* x) {
        pyebpf_rb* y = x->right;
        pyebpf_rb* p = RB_PARENT(x);
        if (!y || RB_BAD(y) || RB_BAD(p) || RB_BAD(y->left))
            return 0;
        x->right = y->left;
        if (y->left)
            rb_set_parent(y->left, x);
        rb_change_child(r, p, x, y);
        rb_set_parent(y, p);
        y->left = x;
        rb_set_parent(x, y);
        return 1;
    }

    static int rb_rotate_right(pyebpf_rb_root* r, pyebpf_rb* x) {
        pyebpf_rb* y = x->left;
        pyebpf_rb* p = RB_PARENT(x);
        if (!y || RB_BAD(y) || RB_BAD(p) || RB_BAD(y->right))
            return 0;
        x->left = y->right;
        if (y->right)
            rb_set_parent(y->right, x);
        rb_change_child(r, p, x, y);
        rb_set_parent(y, p);
        y->right = x;
        rb_set_parent(x, y);
        return 1;
    }

    /* rb_insert_color: the red leaf ``n`` just linked; 0 when a link was not the
       engine's */
    static int pyebpf_rb_insert_color(pyebpf_rb_root* r, pyebpf_rb* n) {
        pyebpf_rb *p, *g, *u;
        int steps;
        for (steps = 0; steps < RB_MAX_STEPS; steps++) {
            p = RB_PARENT(n);
            if (!p) {
                rb_set_pc(n, NULL, 1);
                return 1;
            }
            if (RB_BAD(p))
                return 0;
            if (RB_BLACK_(p))
                return 1;
            g = RB_PARENT(p);           /* a red node is never the root */
            if (!g || RB_BAD(g))
                return 0;
            u = g->left == p ? g->right : g->left;
            if (RB_BAD(u))
                return 0;
            if (RB_RED_(u)) {           /* recolour, go on from the grandparent */
                u->pc |= 1;
                p->pc |= 1;
                g->pc &= ~1ULL;
                n = g;
                continue;
            }
            if (g->left == p) {
                if (p->right == n) {    /* the inner grandchild: rotate it outside */
                    if (!rb_rotate_left(r, p))
                        return 0;
                    p = n;
                }
                p->pc |= 1;
                g->pc &= ~1ULL;
                if (!rb_rotate_right(r, g))
                    return 0;
            } else {
                if (p->left == n) {
                    if (!rb_rotate_right(r, p))
                        return 0;
                    p = n;
                }
                p->pc |= 1;
                g->pc &= ~1ULL;
                if (!rb_rotate_left(r, g))
                    return 0;
            }
            return 1;
        }
        return 0;
    }

    /* ____rb_erase_color: a black node left ``parent``'s subtree on the side of ``x``
       (NULL or black) */
    static int pyebpf_rb_erase_color(pyebpf_rb_root* r, pyebpf_rb* x, pyebpf_rb* parent) {
        pyebpf_rb* w;
        int steps;
        for (steps = 0; steps < RB_MAX_STEPS; steps++) {
            if (RB_BAD(parent))
                return 0;
            if (x != parent->right) {               /* x is the left child */
                w = parent->right;
                if (!w || RB_BAD(w))
                    return 0;
                if (!RB_BLACK_(w)) {
                    w->pc |= 1;
                    parent->pc &= ~1ULL;
                    if (!rb_rotate_left(r, parent))
                        return 0;
                    w = parent->right;
                    if (!w || RB_BAD(w))
                        return 0;
                }
                if (RB_BAD(w->left) || RB_BAD(w->right))
                    return 0;
                if (!RB_RED_(w->left) && !RB_RED_(w->right)) {
                    w->pc &= ~1ULL;
                    if (!RB_BLACK_(parent)) {
                        parent->pc |= 1;
                        return 1;
                    }
                    x = parent;
                    parent = RB_PARENT(x);
                    if (!parent)
                        return 1;
                    continue;
                }
                if (!RB_RED_(w->right)) {
                    w->left->pc |= 1;
                    w->pc &= ~1ULL;
                    if (!rb_rotate_right(r, w))
                        return 0;
                    w = parent->right;
                }
                w->pc = (w->pc & ~1ULL) | (parent->pc & 1);
                parent->pc |= 1;
                w->right->pc |= 1;
                if (!rb_rotate_left(r, parent))
                    return 0;
                return 1;
            } else {
                w = parent->left;
                if (!w || RB_BAD(w))
                    return 0;
                if (!RB_BLACK_(w)) {
                    w->pc |= 1;
                    parent->pc &= ~1ULL;
                    if (!rb_rotate_right(r, parent))
                        return 0;
                    w = parent->left;
                    if (!w || RB_BAD(w))
                        return 0;
                }
                if (RB_BAD(w->left) || RB_BAD(w->right))
                    return 0;
                if (!RB_RED_(w->left) && !RB_RED_(w->right)) {
                    w->pc &= ~1ULL;
                    if (!RB_BLACK_(parent)) {
                        parent->pc |= 1;
                        return 1;
                    }
                    x = parent;
                    parent = RB_PARENT(x);
                    if (!parent)
                        return 1;
                    continue;
                }
                if (!RB_RED_(w->left)) {
                    w->right->pc |= 1;
                    w->pc &= ~1ULL;
                    if (!rb_rotate_left(r, w))
                        return 0;
                    w = parent->left;
                }
                w->pc = (w->pc & ~1ULL) | (parent->pc & 1);
                parent->pc |= 1;
                w->left->pc |= 1;
                if (!rb_rotate_right(r, parent))
                    return 0;
                return 1;
            }
        }
        return 0;
    }

    /* rb_next, for the cached leftmost node (which has no left child) */
    static pyebpf_rb* pyebpf_rb_next(pyebpf_rb* n) {
        pyebpf_rb* p;
        int steps;
        if (n->right) {
            n = n->right;
            for (steps = 0; n->left && steps < RB_MAX_STEPS; steps++) {
                if (RB_BAD(n->left))
                    return NULL;
                n = n->left;
            }
            return n;
        }
        for (steps = 0; steps < RB_MAX_STEPS; steps++) {
            p = RB_PARENT(n);
            if (!p || RB_BAD(p) || p->left == n)
                return RB_BAD(p) ? NULL : p;
            n = p;
        }
        return NULL;
    }

    /* rb_erase_cached; 0 when a link was not the engine's */
    static int pyebpf_rb_erase(pyebpf_rb_root* r, pyebpf_rb* z) {
        pyebpf_rb *child = z->right, *tmp = z->left, *parent, *y, *child2;
        pyebpf_rb* rebalance = NULL;
        uint64_t pc = z->pc;
        int steps;
        if (RB_BAD(child) || RB_BAD(tmp) || RB_BAD(RB_PARENT(z)))
            return 0;
        if (r->leftmost == z)
            r->leftmost = pyebpf_rb_next(z);
        if (!tmp) {                          /* at most a right child */
            parent = RB_PARENT(z);
            rb_change_child(r, parent, z, child);
            if (child)
                child->pc = pc;              /* a lone child is red: it takes z's place */
            else if (pc & 1)
                rebalance = parent;
        } else if (!child) {                 /* a left child only */
            tmp->pc = pc;
            rb_change_child(r, RB_PARENT(z), z, tmp);
        } else {                             /* two children: the successor moves up */
            y = child;
            tmp = child->left;
            if (!tmp) {
                parent = y;
                child2 = y->right;
            } else {
                for (steps = 0; steps < RB_MAX_STEPS; steps++) {
                    if (RB_BAD(tmp))
                        return 0;
                    parent = y;
                    y = tmp;
                    tmp = tmp->left;
                    if (!tmp)
                        break;
                }
                if (tmp)
                    return 0;
                child2 = y->right;
                if (RB_BAD(child2))
                    return 0;
                parent->left = child2;
                y->right = child;
                rb_set_parent(child, y);
            }
            if (RB_BAD(child2))
                return 0;
            tmp = z->left;
            y->left = tmp;
            rb_set_parent(tmp, y);
            rb_change_child(r, RB_PARENT(z), z, y);
            if (child2) {
                rb_set_pc(child2, parent, 1);
            } else if (y->pc & 1) {
                rebalance = parent;
            }
            y->pc = pc;
        }
        if (rebalance)
            return pyebpf_rb_erase_color(r, NULL, rebalance);
        return 1;
    }
    """
    ctypedef struct pyebpf_rb:
        uint64_t pc
        pyebpf_rb* right
        pyebpf_rb* left
        uint64_t owner
    ctypedef struct pyebpf_rb_root:
        pyebpf_rb* node
        pyebpf_rb* leftmost
    uint64_t pyebpf_rb_lo, pyebpf_rb_hi
    bint RB_BAD(void* p) nogil
    int RB_MAX_STEPS
    bint rb_insert_color "pyebpf_rb_insert_color" (pyebpf_rb_root* r, pyebpf_rb* n) nogil
    bint rb_erase "pyebpf_rb_erase" (pyebpf_rb_root* r, pyebpf_rb* n) nogil


cdef inline void _rb_bounds() noexcept nogil:
    global pyebpf_rb_lo, pyebpf_rb_hi
    if _heap == NULL:                 # no arena: no link is the engine's
        pyebpf_rb_lo = pyebpf_rb_hi = 0
    else:
        pyebpf_rb_lo = <uintptr_t>_heap + OBJ_HDR
        pyebpf_rb_hi = <uintptr_t>_heap + HEAP_SIZE


cdef int32_t _rb_node_off(Vm* vm, uint64_t root) noexcept nogil:
    """The offset of the node in the objects of the tree whose root is at ``root`` (a
    bpf_rb_root of an object, or of a value of one of the running program's maps or
    their inner maps), or -1."""
    cdef int k
    cdef MapStore* m
    cdef uint64_t rel
    cdef uint16_t f = heap_field(root)
    if f & FIELD_KIND == FIELD_RB_ROOT:
        return f & FIELD_NODE_OFF
    m = value_map(vm, root)
    if m == NULL:
        return -1
    rel = (root - <uintptr_t>m.values) % m.stride
    for k in range(m.nlists):
        if m.rb_roots & (1 << k) and <uint64_t>m.list_off[k] == rel:
            return m.list_node_off[k]
    return -1


cdef pyebpf_rb_root* _rb_root(uint64_t root) noexcept nogil:
    """The root, emptied when its links are not the engine's."""
    cdef pyebpf_rb_root* r = <pyebpf_rb_root*><uintptr_t>root
    _rb_bounds()
    if RB_BAD(r.node) or RB_BAD(r.leftmost) or (r.node == NULL) != (r.leftmost == NULL):
        r.node = r.leftmost = NULL
    return r


cdef uint64_t _rb_add(Vm* vm, uint64_t root, uint64_t node, uint64_t less) noexcept nogil:
    """__bpf_rbtree_add: ``node`` linked where ``less(node, parent)`` leads from the
    root (left when true), then the tree rebalanced; a node that is in a tree already
    (a refcounted object's) is -EINVAL, and the reference the program gave is
    dropped."""
    cdef int32_t noff = _rb_node_off(vm, root)
    cdef pyebpf_rb_root* r
    cdef pyebpf_rb* n = <pyebpf_rb*><uintptr_t>node
    cdef pyebpf_rb* parent = NULL
    cdef pyebpf_rb** link
    cdef bint leftmost = True
    cdef uint64_t ret = 0
    cdef int steps = 0
    if noff < 0 or _obj_hdr(node - <uint32_t>noff) == NULL:
        return err(EINVAL)
    r = _rb_root(root)
    if RB_BAD(n):
        return err(EINVAL)
    if n.owner:
        obj_drop(node - <uint32_t>noff)
        return err(EINVAL)
    link = &r.node
    while link[0] != NULL:
        parent = link[0]
        steps += 1
        if RB_BAD(parent) or steps > RB_MAX_STEPS:
            r.node = r.leftmost = NULL
            return err(EINVAL)
        if not vm_callback(vm, less, node, <uintptr_t>parent, 0, 0, &ret):
            return 0
        if ret:
            link = &parent.left
        else:
            link = &parent.right
            leftmost = False
    n.pc = <uintptr_t>parent      # rb_link_node: red
    n.left = n.right = NULL
    link[0] = n
    if leftmost:
        r.leftmost = n
    if not rb_insert_color(r, n):
        r.node = r.leftmost = NULL
        return err(EINVAL)
    n.owner = root
    return 0


cdef uint64_t _rb_remove(Vm* vm, uint64_t root, uint64_t node) noexcept nogil:
    """bpf_rbtree_remove: the node taken out of the tree, or NULL when it is not in
    this one."""
    cdef pyebpf_rb_root* r = _rb_root(root)
    cdef pyebpf_rb* n = <pyebpf_rb*><uintptr_t>node
    if _rb_node_off(vm, root) < 0 or node == 0 or RB_BAD(n) or n.owner != root:
        return 0
    if not rb_erase(r, n):
        r.node = r.leftmost = NULL
        return 0
    n.pc = node                   # RB_CLEAR_NODE
    n.left = n.right = NULL
    n.owner = 0
    return node


cdef uint64_t _rb_child(Vm* vm, uint64_t root, uint64_t node, bint right) noexcept nogil:
    """bpf_rbtree_left, bpf_rbtree_right: NULL for a node of another tree."""
    cdef pyebpf_rb* n = <pyebpf_rb*><uintptr_t>node
    cdef pyebpf_rb* c
    _rb_root(root)
    if _rb_node_off(vm, root) < 0 or node == 0 or RB_BAD(n) or n.owner != root:
        return 0
    c = n.right if right else n.left
    return 0 if RB_BAD(c) else <uintptr_t>c


cdef void rbtree_free(uint64_t root, int* lock, uint32_t node_off,
                      uint32_t* pending) noexcept nogil:
    """bpf_rb_root_free: the tree emptied under its ``lock`` (if any), then each object
    in it put, leaves first (obj_put: the last references' join ``pending``)."""
    cdef pyebpf_rb_root* r = <pyebpf_rb_root*><uintptr_t>root
    cdef pyebpf_rb* n
    cdef pyebpf_rb* p
    cdef uint64_t steps = 0
    _rb_bounds()
    if lock != NULL:
        map_lock(lock)
    n = r.node
    r.node = r.leftmost = NULL
    if lock != NULL:
        map_unlock(lock)
    while n != NULL and not RB_BAD(n) and steps < HEAP_SIZE // sizeof(pyebpf_rb):
        steps += 1
        if n.left != NULL:
            n = n.left
            continue
        if n.right != NULL:
            n = n.right
            continue
        p = <pyebpf_rb*><uintptr_t>(n.pc & ~3ULL)
        if p == NULL or RB_BAD(p):
            p = NULL
        elif p.left == n:
            p.left = NULL
        elif p.right == n:
            p.right = NULL
        else:
            p = NULL
        n.owner = 0
        obj_put(<uintptr_t>n - node_off, pending)
        n = p


# --- the kfuncs

cdef uint64_t _k_rbtree_add(Vm* vm, uint64_t root, uint64_t node, uint64_t less,
                            uint64_t meta, uint64_t off) noexcept nogil:
    return _rb_add(vm, root, node, less)


cdef uint64_t _k_rbtree_remove(Vm* vm, uint64_t root, uint64_t node, uint64_t r3,
                               uint64_t r4, uint64_t r5) noexcept nogil:
    return _rb_remove(vm, root, node)


cdef uint64_t _k_rbtree_first(Vm* vm, uint64_t root, uint64_t r2, uint64_t r3,
                              uint64_t r4, uint64_t r5) noexcept nogil:
    if _rb_node_off(vm, root) < 0:
        return 0
    return <uintptr_t>_rb_root(root).leftmost


cdef uint64_t _k_rbtree_root(Vm* vm, uint64_t root, uint64_t r2, uint64_t r3,
                             uint64_t r4, uint64_t r5) noexcept nogil:
    if _rb_node_off(vm, root) < 0:
        return 0
    return <uintptr_t>_rb_root(root).node


cdef uint64_t _k_rbtree_left(Vm* vm, uint64_t root, uint64_t node, uint64_t r3,
                             uint64_t r4, uint64_t r5) noexcept nogil:
    return _rb_child(vm, root, node, False)


cdef uint64_t _k_rbtree_right(Vm* vm, uint64_t root, uint64_t node, uint64_t r3,
                              uint64_t r4, uint64_t r5) noexcept nogil:
    return _rb_child(vm, root, node, True)


cdef void register_rbtree_kfuncs() except *:
    _kfunc("bpf_rbtree_add_impl", _k_rbtree_add)
    _kfunc("bpf_rbtree_remove", _k_rbtree_remove)
    _kfunc("bpf_rbtree_first", _k_rbtree_first)
    _kfunc("bpf_rbtree_root", _k_rbtree_root)
    _kfunc("bpf_rbtree_left", _k_rbtree_left)
    _kfunc("bpf_rbtree_right", _k_rbtree_right)
