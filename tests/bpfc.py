"""Compile BPF C test programs with Debian's clang-19 (or clang-20) and take out one
section's code.

Programs here must be self-contained (no maps, no global data): the section's bytes
are used as they are, and a section with relocations is refused.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

import toolpath
from pyebpf.pinning import private_directory

CLANG = toolpath.find("clang-19")
OBJCOPY = toolpath.find("llvm-objcopy-19")
READELF = toolpath.find("llvm-readelf-19")
_MULTIARCH = subprocess.run(["gcc", "-print-multiarch"], capture_output=True,
                            text=True).stdout.strip() if toolpath.find("gcc") else ""

PRELUDE = """\
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
"""


def _clang20() -> tuple[list[str], str | None]:
    """The command that runs clang 20 and the reason there is none: Debian's clang-20
    where apt has it, else the clang 20.1 that the ``ziglang`` 0.15 wheel bundles (the
    test extra installs it: Debian 12's apt has no clang-20), run as ``zig clang`` with the
    wheel's own headers (stddef.h, ...) as its resource directory."""
    found = toolpath.find("clang-20")
    if found:
        return [found], None
    try:
        import ziglang
    except ImportError:
        return [], "no clang-20 (apt-get install clang-20, or pip install 'ziglang==0.15.2')"
    home = Path(ziglang.__file__).parent
    cmd = [str(home / "zig"), "clang", "-resource-dir", str(home / "lib")]
    version = subprocess.run([*cmd, "--version"], capture_output=True, text=True).stdout
    if not version.startswith("clang version 20."):
        return [], f"the ziglang wheel's clang is not clang 20: {version.splitlines()[:1]}"
    return cmd, None


CLANG20, NO_CLANG20 = _clang20()
# bpf_sk_assign_tcp_reqsk and its attributes, declared as selftests' bpf_kfuncs.h does
TCP_REQSK_DECLS = r"""
struct bpf_tcp_req_attrs {
    __u32 rcv_tsval; __u32 rcv_tsecr; __u16 mss; __u8 rcv_wscale; __u8 snd_wscale;
    __u8 ecn_ok; __u8 wscale_ok; __u8 sack_ok; __u8 tstamp_ok; __u8 usec_ts_ok;
    __u8 reserved[3];
};
extern int bpf_sk_assign_tcp_reqsk(struct __sk_buff *skb, struct sock *sk,
                                   struct bpf_tcp_req_attrs *attrs, int attrs__sz) __ksym;
char LICENSE[] SEC("license") = "GPL";
"""
COMPILERS = ("clang-19", "clang-20")


def cache_dir() -> Path:
    """This user's compile cache, <tmp>/pyebpf-bpfc-<uid>, made 0700 if missing; refused
    (PinError) unless it is a directory of this user's that no one else can write to:
    whoever could would choose the objects these tests run."""
    path = os.path.join(tempfile.gettempdir(), f"pyebpf-bpfc-{os.getuid()}")
    os.close(private_directory(path, "compile cache", "another user could choose the "
                               "objects the tests run; remove it, or set TMPDIR to "
                               "compile elsewhere"))
    return Path(path)


def _cached(key: str, suffix: str, make) -> bytes:
    """``make()``'s bytes, kept under ``key`` (written to a temporary name, then renamed)."""
    out = cache_dir() / f"{key}{suffix}"
    if out.exists():
        return out.read_bytes()
    data = make()
    tmp_out = out.with_suffix(f".{os.getpid()}.tmp")
    tmp_out.write_bytes(data)
    tmp_out.replace(out)
    return data


def compile_object(source: str, *, flags: tuple[str, ...] = ("-O2",),
                   prelude: bool = True, compiler: str = "clang-19") -> bytes:
    """The whole relocatable object of ``source`` (``clang-19 FLAGS -g -target bpf -c``,
    or clang 20 with ``compiler="clang-20"``), cached by content; for the ELF loader's
    tests."""
    if compiler == "clang-20":
        if NO_CLANG20:
            pytest.skip(NO_CLANG20)
        cc = CLANG20
    elif not CLANG:
        pytest.skip("clang-19 not installed (apt-get install clang-19 libbpf-dev)")
    else:
        cc = [CLANG]
    text = (PRELUDE if prelude else "") + source

    def build() -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            src, obj = Path(tmp, "prog.c"), Path(tmp, "prog.o")
            src.write_text(text)
            include = [f"-I/usr/include/{_MULTIARCH}"] if _MULTIARCH else []
            # the object's BTF names its source file: the same name wherever it is built,
            # so recorded kernel answers for loads that carry BTF stay valid
            done = subprocess.run([*cc, *flags, "-g", "-target", "bpf", *include,
                                   f"-ffile-prefix-map={tmp}=.", "-c", "prog.c", "-o",
                                   "prog.o"], capture_output=True, text=True, cwd=tmp)
            if done.returncode:
                raise ValueError(f"{compiler} failed:\n{done.stderr}")
            return obj.read_bytes()
    # clang-19's key is the one its cached objects were kept under before clang-20 came
    tag = "" if compiler == "clang-19" else f"\0{compiler}"
    return _cached(hashlib.sha256(f"{text}\0object\0{flags}\0v2{tag}".encode())
                   .hexdigest()[:24], ".o", build)


def compile_c(source: str, section: str = "tc", *, prelude: bool = True,
              flags: tuple[str, ...] = ("-O2",)) -> bytes:
    """The code of ``section`` of ``source`` compiled for BPF (cached by content)."""
    if not (CLANG and OBJCOPY and READELF):
        pytest.skip("clang-19/llvm-19 not installed (apt-get install clang-19 libbpf-dev)")
    obj_bytes = compile_object(source, flags=flags, prelude=prelude)

    def extract() -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            obj, bin_ = Path(tmp, "prog.o"), Path(tmp, "prog.bin")
            obj.write_bytes(obj_bytes)
            relocs = subprocess.run([READELF, "-r", str(obj)], check=True,
                                    capture_output=True, text=True).stdout
            if f".rel{section}" in relocs:
                raise ValueError(f"section {section} has relocations; tests/bpfc.py takes "
                                 "self-contained programs only")
            subprocess.run([OBJCOPY, "-O", "binary", f"--only-section={section}", str(obj),
                            str(bin_)], check=True)
            code = bin_.read_bytes()
        if not code:
            raise ValueError(f"no code in section {section!r}")
        return code
    key = hashlib.sha256(obj_bytes + section.encode()).hexdigest()[:24]
    return _cached(key, ".bin", extract)
