"""__kconfig externs: the .kconfig map's layout and values, as libbpf builds them, in
pyebpf.load and pyebpf.kernel.load_object."""
from __future__ import annotations

import pytest
from scapy.all import IP, TCP, Ether, raw

import pyebpf
import pyebpf.kernel
from pyebpf import kconfig
from pyebpf.errors import ElfError

import bpfc
import libbpfobj
from recorded_kernel import count_comparison

PACKET = raw(Ether() / IP() / TCP() / (b"x" * 10))
EXTERNS = """
extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern _Bool CONFIG_BPF_SYSCALL __kconfig;
extern enum libbpf_tristate CONFIG_NET_CLS_BPF __kconfig;
extern int CONFIG_HZ __kconfig __weak;
extern char CONFIG_DEFAULT_HOSTNAME[8] __kconfig __weak;
extern unsigned long long CONFIG_NOT_A_THING __kconfig __weak;

SEC("tc")
int kc(struct __sk_buff *skb)
{
    skb->cb[0] = LINUX_KERNEL_VERSION;
    skb->cb[1] = CONFIG_BPF_SYSCALL | CONFIG_NET_CLS_BPF << 4;
    skb->cb[2] = CONFIG_HZ;
    skb->cb[3] = CONFIG_DEFAULT_HOSTNAME[0] | CONFIG_DEFAULT_HOSTNAME[1] << 8;
    skb->cb[4] = CONFIG_NOT_A_THING;
    return 0;
}
char _license[] SEC("license") = "GPL";
"""
# a config the test gives, so the values do not depend on the machine's
CONFIG = {"CONFIG_BPF_SYSCALL": "y", "CONFIG_NET_CLS_BPF": "m", "CONFIG_HZ": 300,
          "CONFIG_DEFAULT_HOSTNAME": "(none)"}


def test_kconfig_externs_read_what_the_kernel_reads():
    data = bpfc.compile_object(EXTERNS)
    ours = pyebpf.load(data, kconfig=CONFIG).program("kc").run(PACKET)
    with pyebpf.kernel.load_object(data, kconfig=CONFIG) as kobj:
        theirs = kobj.program("kc").test_run(PACKET, ctx={})
    assert list(ours.skb.as_dict()["cb"]) == theirs.skb["cb"]
    count_comparison()
    assert list(ours.skb.as_dict()["cb"]) == [kconfig.kernel_version(), 1 | 2 << 4, 300,
                                              ord("(") | ord("n") << 8, 0]


def test_the_kconfig_map_is_laid_out_and_filled_as_libbpf_does(tmp_path, live_kernel):
    """libbpf reads the running kernel's config: so does pyebpf without kconfig=."""
    path = tmp_path / "kc.o"
    path.write_bytes(bpfc.compile_object(EXTERNS))
    spec = pyebpf.elf.parse(path)
    ours = spec.maps[".kconfig"].contents[0][1]
    with libbpfobj.LoadedObject(str(path)) as lobj:
        name = next(n for n in lobj.maps if n.endswith(".kconfig"))
        assert lobj.lookup(name, bytes(4), len(ours)) == ours


def test_a_strong_extern_without_a_value_is_one_error_naming_it():
    source = EXTERNS.replace("CONFIG_NOT_A_THING __kconfig __weak", "CONFIG_NOT_A_THING __kconfig")
    with pytest.raises(ElfError, match=r"extern \(kcfg\) 'CONFIG_NOT_A_THING': no value"):
        pyebpf.load(bpfc.compile_object(source), kconfig=CONFIG)


def test_a_value_of_the_wrong_kind_is_one_error_naming_it():
    with pytest.raises(ElfError, match=r"extern \(kcfg\) 'CONFIG_BPF_SYSCALL': value 'm'"):
        pyebpf.load(bpfc.compile_object(EXTERNS), kconfig={**CONFIG, "CONFIG_BPF_SYSCALL": "m"})


def test_config_text_is_read_as_a_dot_config():
    text = 'CONFIG_HZ=1000\n# CONFIG_X is not set\nCONFIG_BPF_SYSCALL=y\nCONFIG_NET_CLS_BPF=y\n'
    cb = pyebpf.load(bpfc.compile_object(EXTERNS), kconfig=text).program("kc").run(
        PACKET).skb.as_dict()["cb"]
    assert list(cb)[1:3] == [1 | 1 << 4, 1000]

