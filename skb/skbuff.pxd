# The sk_buff model's types: one linear packet buffer with head- and tailroom, plus the
# metadata the kernel keeps beside the bytes, and the __sk_buff context's access rules.
# The functions on them are compiled into pyebpf._core (skb/skbuff.pxi) and declared
# for other compilation units in pyebpf/_core.pxd.
#
# Offsets (data, mac_header, network_header, transport_header) count from ``head``.
# Values that the kernel stores big-endian (protocol, vlan_proto) are kept exactly as a
# little-endian load of those bytes returns them, which is what programs read:
# IPv4 is 0x0008, 802.1Q 0x0081.
from libc.stdint cimport int32_t, uint8_t, uint16_t, uint32_t, uint64_t

cdef enum:
    SKB_HEADROOM = 256          # room for vlan pushes and change_head without moving bytes
    SKB_TAILROOM = 256
    SKB_MAX_ALLOC = 16064       # kernel's SKB_MAX_ALLOC for 4 KiB pages (change_tail limit)
    ETH_HLEN = 14
    ETH_ALEN = 6
    VLAN_HLEN = 4
    NO_HEADER = 0xffffffff
    TUNNEL_OPTS_MAX = 255
    SOCK_BLOCK = 256            # bytes of NetEnv.sock_mem per socket
    SOCK_TCP_VIEW = 128         # where its struct bpf_tcp_sock starts in the block
    SK_VIEW_SIZE = 80           # sizeof(struct bpf_sock)

# skb->ip_summed
cdef enum:
    CHECKSUM_NONE = 0
    CHECKSUM_UNNECESSARY = 1
    CHECKSUM_COMPLETE = 2
    CHECKSUM_PARTIAL = 3

# protocol values as programs read them (__be16 loaded little-endian)
cdef enum:
    BE_ETH_P_IP = 0x0008
    BE_ETH_P_IPV6 = 0xdd86
    BE_ETH_P_8021Q = 0x0081
    BE_ETH_P_8021AD = 0xa888
    BE_ETH_P_802_3 = 0x0100
    BE_ETH_P_802_2 = 0x0400

ctypedef struct TunnelInfo:
    # the kernel's struct ip_tunnel_info, as skb_tunnel_info() returns it
    bint present            # metadata attached (received, or set by set_tunnel_key)
    bint from_helper        # the per-CPU metadata of bpf_skb_set_tunnel_key (mode TX)
    bint ipv6
    uint64_t id
    # ip_tunnel_key.u, network order: IPv4 src at 0 and dst at 4, IPv6 src at 0 and
    # dst at 16 (the union's aliasing is what the 4.6 profile's stale addresses show)
    uint8_t addr[32]
    uint8_t tos
    uint8_t ttl
    uint16_t flags          # TUNNEL_* bits, host order (0x0001 CSUM, 0x0004 KEY, ...)
    uint32_t label          # IPv6 flow label, host order
    uint32_t opts_len
    uint8_t opts[TUNNEL_OPTS_MAX + 1]

ctypedef struct CloneRec:
    uint32_t ifindex
    uint32_t flags
    size_t offset           # into Skb.clone_buf
    size_t length

ctypedef struct NetDevice:
    # a device of the modelled network (pyebpf.environment.Device)
    uint32_t ifindex
    uint32_t mtu
    bint up
    bint forwarding
    uint8_t mac[ETH_ALEN]

ctypedef struct NetRoute:
    # one route of Environment.fib(); addresses in network order, IPv4 in the first 4
    uint32_t table
    uint8_t family              # AF_INET or AF_INET6
    uint8_t prefixlen
    uint8_t type                # RTN_*
    bint has_gw
    bint has_src
    uint8_t dst[16]
    uint8_t gw[16]
    uint8_t src[16]
    uint32_t ifindex
    uint32_t metric
    uint32_t mtu                # a locked MTU, 0 for none

ctypedef struct NetAddr:
    uint32_t ifindex
    uint8_t family
    uint8_t prefixlen
    uint8_t addr[16]

ctypedef struct NetNeigh:
    uint32_t ifindex
    uint8_t family
    bint valid                  # NUD_VALID
    uint8_t addr[16]
    uint8_t lladdr[ETH_ALEN]

ctypedef struct NetSock:
    # a socket of Environment.sockets, then the request sockets of their SYN queues
    # (Environment.request_sockets); its struct bpf_sock and bpf_tcp_sock views are
    # in NetEnv.sock_mem at index * SOCK_BLOCK and index * SOCK_BLOCK + SOCK_TCP_VIEW
    uint8_t family
    uint8_t protocol            # IPPROTO_TCP or IPPROTO_UDP
    uint8_t state               # TCP_ESTABLISHED, TCP_LISTEN, TCP_CLOSE or TCP_NEW_SYN_RECV
    int32_t listener            # a request socket's listener's index; -1 for others
    bint v6only
    bint reuseport
    bint connected              # has a remote endpoint
    uint8_t laddr[16]
    uint8_t raddr[16]
    uint16_t lport              # host order
    uint16_t rport
    uint32_t bound_dev_if
    uint64_t cookie             # Environment.socket_cookie: what local storage is keyed by
    uint32_t uid                # Socket.uid, Socket.cgroup's level and the ids of its
    int cgroup_level            # ancestors by level: what the helpers that read skb->sk
    uint64_t* cgroups           # report once the socket is assigned to the packet

ctypedef struct CtTable:
    # the namespace's conntrack table (skb/conntrack.pxi): a slot per entry, each its
    # struct nf_conn (pyebpf.skb.kern.nf_conn_layout); allocated on first use, kept
    # from run to run as the kernel's table is
    uint8_t* mem                # NF_CT_MODEL_SLOTS slots of CtLayout.slot bytes
    uint8_t* state              # per slot: CT_FREE, CT_ALLOC (not inserted), CT_INSERTED
    uint32_t* refs              # per slot: the references programs hold

ctypedef struct NetCgroup:
    # one cgroup of Environment.cgroups, by its index there (pyebpf/tasks.pxi)
    uint64_t id
    int32_t parent              # the parent's index; -1 for the root
    int32_t level
    uint32_t xattr_off          # its extended attributes: NetEnv.xattrs from here,
    uint32_t xattr_len          # this many bytes of records (pyebpf/tasks.pxi)

ctypedef struct NetEnv:
    # the modelled network a run sees (pyebpf.environment.Environment), owned by its
    # Python object: an skb only borrows it
    uint64_t netns_cookie
    uint64_t init_netns_cookie
    uint64_t* next_cookie       # the cookie the next request socket asked gets: from
                                # Environment.request_socket_cookie() on, over every run
    bint has_sk                 # skb->sk is set
    uint64_t sk_cookie
    uint32_t sk_uid
    uint32_t sk_classid
    int sk_cgroup_level
    uint64_t* sk_cgroups        # ids of the socket's cgroup's ancestors, by level
    int task_cgroup_level
    uint64_t* task_cgroups      # the same for the current task's cgroup
    size_t ncgroups
    NetCgroup* cgroups          # every cgroup of the Environment, in its order
    uint8_t* xattrs             # Environment.cgroup_xattrs' records, cgroup by cgroup
    size_t ndevices
    NetDevice* devices
    size_t nroutes
    NetRoute* routes
    size_t naddrs
    NetAddr* addrs
    size_t nneighs
    NetNeigh* neighs
    size_t nsocks
    NetSock* socks
    uint8_t* sock_mem           # nsocks * SOCK_BLOCK bytes, read-only to programs
    uint8_t* kern_mem           # nsocks * kern_block bytes: each socket's kernel struct
    uint32_t kern_block         # (pyebpf.skb.kern.kernel_socket), read-only to programs
    uint8_t syncookie_secret[32]  # Environment.syncookie_secret: two SipHash keys
    CtTable* ct                 # never NULL; its entries outlive runs

ctypedef struct Skb:
    uint8_t* head
    uint32_t cap                # the buffer as the model sees it: headroom, bytes, tailroom
    uint32_t alloc              # bytes allocated at head (>= cap: a reused buffer may be larger)
    uint32_t data
    uint32_t len
    uint32_t mac_header
    uint32_t network_header
    uint32_t transport_header   # NO_HEADER when unset
    uint8_t pkt_type
    uint32_t mark
    uint16_t queue_mapping
    uint16_t protocol
    bint vlan_present           # hardware-accelerated (out-of-band) tag
    uint16_t vlan_proto
    uint16_t vlan_tci
    uint32_t priority
    uint32_t ingress_ifindex
    uint32_t ifindex
    uint16_t tc_index
    uint8_t cb[20]
    uint32_t hash
    bint l4_hash
    bint sw_hash
    uint16_t tc_classid
    uint32_t napi_id
    uint64_t tstamp
    uint8_t tstamp_type
    uint32_t wire_len
    uint16_t gso_segs
    uint16_t gso_size
    uint64_t hwtstamp
    uint8_t ip_summed
    uint32_t csum
    bint csum_checked           # the run began CHECKSUM_COMPLETE: csum is checked at the end,
                                # as test_run does, even if a helper dropped ip_summed to NONE
    bint encapsulation          # set by skb_adjust_room's ENCAP flags
    bint at_ingress
    uint8_t dev_addr[ETH_ALEN]
    uint8_t dev_broadcast[ETH_ALEN]
    TunnelInfo tun
    # what the program asked for
    bint redirect_set
    uint32_t redirect_ifindex
    uint32_t redirect_flags
    CloneRec* clones
    size_t nclones
    size_t cap_clones
    uint8_t* clone_buf
    size_t clone_len
    size_t clone_cap
    # the devices that exist (clone_redirect's lookup); unlisted: every ifindex > 0
    bint devices_listed
    uint32_t* devices
    size_t ndevices
    char* printk
    size_t printk_len
    size_t printk_cap
    # the environment helpers report
    uint64_t ktime
    uint64_t ktime_step
    uint64_t prandom
    uint32_t cpu
    uint32_t cgroup_classid
    uint32_t route_realm
    uint64_t pid_tgid            # the "current task" (none for a replayed packet)
    uint64_t uid_gid
    uint8_t comm[16]
    int profile                 # PROFILE_CURRENT or PROFILE_V46
    const NetEnv* net           # never NULL after skb_init
    int sk_assigned             # bpf_sk_assign's socket: its index in net.socks plus 1
    bint sk_reqsk               # bpf_sk_assign_tcp_reqsk's: a request socket of that
    uint8_t reqsk_attrs[20]     # listener, made with these struct bpf_tcp_req_attrs
    uint64_t reqsk_cookie_now   # and its cookie (ir_cookie) once bpf_get_socket_cookie made it
    uint32_t reqsk_ts_off       # and its tcp_rsk(req)->ts_off
    uint8_t sk_view[SK_VIEW_SIZE]   # struct bpf_sock of skb->sk, filled when first read
    uint8_t reqsk_view[SK_VIEW_SIZE]    # struct bpf_sock of the request socket assigned
    uint8_t csum_level          # skb->csum_level (CHECKSUM_UNNECESSARY levels)


# skb_load_frame's ``keep`` bits: what the template holds that the frame must not override
cdef enum:
    SKB_KEEP_PROTOCOL = 1       # protocol given by the caller
    SKB_KEEP_PKT_TYPE = 2       # pkt_type given by the caller
    SKB_KEEP_WIRE_LEN = 4       # wire_len given by the caller
    SKB_KEEP_UNTAG = 8          # untag an in-band VLAN tag (tc ingress, skb_vlan_untag)
    SKB_KEEP_NETWORK = 16       # a socket filter's data starts at the network header


cdef enum:
    PROFILE_CURRENT = 0
    PROFILE_V46 = 1


# --- the context's access rules, copied per program from verifier/rules.py ---------

cdef enum:
    CTX_SIZE = 192

ctypedef struct CtxRules:
    uint8_t field[CTX_SIZE]      # field id at each offset
    uint8_t width[CTX_SIZE]      # kernel storage width of that field
    uint8_t read[CTX_SIZE]       # bit (size) set: a read of that size is allowed here
    uint8_t write[CTX_SIZE]


cdef inline uint8_t* skb_data(Skb* skb) noexcept nogil:
    return skb.head + skb.data


cdef inline size_t skb_wire_len(Skb* skb) noexcept nogil:
    # the bytes on the wire: an accelerated VLAN tag goes back in after the MAC addresses
    return skb.len + (VLAN_HLEN if skb.vlan_present and skb.len >= 2 * ETH_ALEN else 0)
