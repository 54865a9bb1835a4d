// A SCHED_CLS classifier: mark TCP traffic by destination port class and drop telnet.
//   mark = 1 for ports < 1024, 2 otherwise; TCP port 23 -> TC_ACT_SHOT (2).
	r0 = 0x0                          // TC_ACT_OK unless decided otherwise
	r2 = *(u32 *)(r1 + 0x4c)          // data
	r3 = *(u32 *)(r1 + 0x50)          // data_end
	r4 = r2
	r4 += 0x36                        // Ethernet + IPv4 (no options) + TCP ports
	if r4 > r3 goto out
	r4 = *(u16 *)(r2 + 0xc)
	if r4 != 0x8 goto out             // EtherType IPv4, as stored
	r4 = *(u8 *)(r2 + 0x17)
	if r4 != 0x6 goto out             // TCP
	r4 = *(u16 *)(r2 + 0x24)          // destination port, network order
	r4 = be16 r4
	r5 = 0x1
	if r4 < 0x400 goto mark
	r5 = 0x2
mark:
	*(u32 *)(r1 + 0x8) = r5           // skb->mark
	if r4 != 0x17 goto out
	r0 = 0x2                          // TC_ACT_SHOT
out:
	exit
