// Classify an Ethernet frame (raw mode: r1 = frame, r2 = its length).
// r0 = class | destination port << 16, where class is
//   1 ARP, 2 ICMP, 3 TCP, 4 UDP, 0 anything else or a truncated frame.
	r6 = r1                          // frame start
	r7 = r1
	r7 += r2                         // frame end
	r0 = 0x0
	r3 = r6
	r3 += 0xe
	if r3 > r7 goto out              // shorter than an Ethernet header
	r4 = *(u16 *)(r6 + 0xc)          // EtherType, as stored (network order)
	r4 = be16 r4
	if r4 == 0x806 goto arp
	if r4 != 0x800 goto out
	r3 = r6
	r3 += 0x22
	if r3 > r7 goto out              // no room for the IPv4 header
	r5 = *(u8 *)(r6 + 0xe)           // version and IHL
	r5 &= 0xf
	r5 <<= 0x2                       // IPv4 header length in bytes
	r8 = *(u8 *)(r6 + 0x17)          // IP protocol
	r0 = 0x2
	if r8 == 0x1 goto out
	r0 = 0x3
	if r8 == 0x6 goto ports
	r0 = 0x4
	if r8 == 0x11 goto ports
	r0 = 0x0
	goto out
ports:
	r3 = r6
	r3 += r5
	r3 += 0xe                        // start of the L4 header
	r4 = r3
	r4 += 0x4
	if r4 > r7 goto out              // no room for the ports
	r4 = *(u16 *)(r3 + 0x2)          // destination port
	r4 = be16 r4
	r4 <<= 0x10
	r0 |= r4
	goto out
arp:
	r0 = 0x1
out:
	exit
