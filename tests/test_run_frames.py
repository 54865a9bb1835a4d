"""What Program.run takes as a packet for skb programs: an Ethernet frame, as
BPF_PROG_TEST_RUN does; a scapy packet that starts at another layer is refused."""
import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Dot1Q, Dot3, Ether, LLC
from scapy.packet import Raw

import pyebpf
from skbdiff import assert_same
from test_helpers_misc import CLS, SF, I, code

# r0 = the EtherType as the skb's protocol field sees it (__sk_buff.protocol, offset 16)
PROTOCOL = code(I(0x61, 0, 1, 16, 0), I(0x95, 0, 0, 0, 0))


@pytest.mark.parametrize("prog_type", [CLS, SF, "sched_act"])
@pytest.mark.parametrize("packet", [IP() / TCP(), Dot1Q() / IP(), Raw(bytes(60))],
                         ids=["IP", "Dot1Q", "Raw"])
def test_a_scapy_packet_without_an_ethernet_header_is_refused_in_one_line(prog_type, packet):
    with pytest.raises(pyebpf.errors.PacketError) as err:
        pyebpf.Program(PROTOCOL, prog_type).run(packet)
    message = str(err.value)
    assert "\n" not in message
    assert f"starts with {type(packet).__name__}" in message and "Ether() / packet" in message


@pytest.mark.parametrize("packet", [Ether() / IP() / TCP(), Dot3() / LLC()],
                         ids=["Ether", "Dot3"])
def test_a_scapy_frame_runs_as_its_bytes_run_in_the_kernel(packet):
    assert_same(PROTOCOL, CLS, bytes(packet))
    prog = pyebpf.Program(PROTOCOL, CLS)
    assert prog.run(packet).retval == prog.run(bytes(packet)).retval


def test_raw_mode_takes_any_scapy_packet_as_memory():
    prog = pyebpf.Program.from_asm("ldxb %r0, [%r1]\nexit")
    assert prog.run(IP()).retval == bytes(IP())[0]
