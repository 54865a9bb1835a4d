"""Load a whole BPF ELF object into the running kernel with the system's libbpf (ctypes).

A private test helper until pyebpf has its own loader: libbpf does what users' loaders
do (BTF-defined maps, relocations, program-array initial contents) without pinning
anything in bpffs, which bpftool's ``prog loadall`` would need.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from dataclasses import dataclass

import pytest

from pyebpf.errors import KernelError

_lib = None


def libbpf():
    """The ctypes handle of libbpf.so.1, or skip the test when it is not installed."""
    global _lib
    if _lib is None:
        name = ctypes.util.find_library("bpf")
        if not name:
            pytest.skip("libbpf.so not installed (apt-get install libbpf1)")
        lib = ctypes.CDLL(name, use_errno=True)
        for fn, res, args in (
                ("bpf_object__open_file", ctypes.c_void_p, (ctypes.c_char_p, ctypes.c_void_p)),
                ("bpf_object__load", ctypes.c_int, (ctypes.c_void_p,)),
                ("bpf_object__close", None, (ctypes.c_void_p,)),
                ("bpf_object__next_program", ctypes.c_void_p, (ctypes.c_void_p, ctypes.c_void_p)),
                ("bpf_object__next_map", ctypes.c_void_p, (ctypes.c_void_p, ctypes.c_void_p)),
                ("bpf_program__name", ctypes.c_char_p, (ctypes.c_void_p,)),
                ("bpf_program__section_name", ctypes.c_char_p, (ctypes.c_void_p,)),
                ("bpf_program__type", ctypes.c_int, (ctypes.c_void_p,)),
                ("bpf_program__fd", ctypes.c_int, (ctypes.c_void_p,)),
                ("bpf_program__insns", ctypes.c_void_p, (ctypes.c_void_p,)),
                ("bpf_program__insn_cnt", ctypes.c_size_t, (ctypes.c_void_p,)),
                ("bpf_map__name", ctypes.c_char_p, (ctypes.c_void_p,)),
                ("bpf_map__type", ctypes.c_int, (ctypes.c_void_p,)),
                ("bpf_map__fd", ctypes.c_int, (ctypes.c_void_p,)),
                ("bpf_map__max_entries", ctypes.c_uint32, (ctypes.c_void_p,)),
                ("bpf_map_lookup_elem", ctypes.c_int, (ctypes.c_int, ctypes.c_void_p,
                                                       ctypes.c_void_p)),
                ("libbpf_num_possible_cpus", ctypes.c_int, ()),
                ("libbpf_get_error", ctypes.c_long, (ctypes.c_void_p,))):
            f = getattr(lib, fn)
            f.restype, f.argtypes = res, args
        _lib = lib
    return _lib


@dataclass(frozen=True)
class LoadedProgram:
    name: str
    section: str
    prog_type: int
    fd: int
    insns: bytes = b""          # what libbpf sent the kernel (CO-RE relocated, linked)


@dataclass(frozen=True)
class LoadedMap:
    name: str
    map_type: int
    fd: int
    max_entries: int


class LoadedObject:
    """An ELF object opened and loaded by libbpf; a context manager that unloads it."""

    def __init__(self, path: str):
        lib = libbpf()
        obj = lib.bpf_object__open_file(os.fsencode(path), None)
        if not obj or lib.libbpf_get_error(obj):
            raise KernelError(errno.EINVAL, f"libbpf could not open {path}")
        if lib.bpf_object__load(obj):
            err = ctypes.get_errno()
            lib.bpf_object__close(obj)
            raise KernelError(err, f"libbpf could not load {path} into the kernel: "
                                   f"{os.strerror(err)} (the verifier log went to stderr)")
        self._obj = obj
        self.programs, self.maps = {}, {}
        prog = lib.bpf_object__next_program(obj, None)
        while prog:
            p = LoadedProgram(lib.bpf_program__name(prog).decode(),
                              lib.bpf_program__section_name(prog).decode(),
                              lib.bpf_program__type(prog), lib.bpf_program__fd(prog),
                              ctypes.string_at(lib.bpf_program__insns(prog),
                                               8 * lib.bpf_program__insn_cnt(prog)))
            self.programs[p.name] = p
            prog = lib.bpf_object__next_program(obj, prog)
        m = lib.bpf_object__next_map(obj, None)
        while m:
            lm = LoadedMap(lib.bpf_map__name(m).decode(), lib.bpf_map__type(m),
                           lib.bpf_map__fd(m), lib.bpf_map__max_entries(m))
            self.maps[lm.name] = lm
            m = lib.bpf_object__next_map(obj, m)

    def lookup(self, map_name: str, key: bytes, value_size: int) -> bytes | None:
        """The value of ``key`` in one of the object's maps (None when absent)."""
        value = ctypes.create_string_buffer(value_size)
        if libbpf().bpf_map_lookup_elem(self.maps[map_name].fd, key, value):
            return None
        return value.raw

    def close(self) -> None:
        if self._obj:
            libbpf().bpf_object__close(self._obj)
            self._obj = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _TestRunOpts(ctypes.Structure):
    # struct bpf_test_run_opts of libbpf 1.1
    _fields_ = [("sz", ctypes.c_size_t), ("data_in", ctypes.c_void_p),
                ("data_out", ctypes.c_void_p), ("data_size_in", ctypes.c_uint32),
                ("data_size_out", ctypes.c_uint32), ("ctx_in", ctypes.c_void_p),
                ("ctx_out", ctypes.c_void_p), ("ctx_size_in", ctypes.c_uint32),
                ("ctx_size_out", ctypes.c_uint32), ("retval", ctypes.c_uint32),
                ("repeat", ctypes.c_int), ("duration", ctypes.c_uint32),
                ("flags", ctypes.c_uint32), ("cpu", ctypes.c_uint32),
                ("batch_size", ctypes.c_uint32)]


SKB_CTX_SIZE = 192


def test_run(prog_fd: int, data: bytes, ctx: bytes = b"") -> tuple[int, bytes, bytes]:
    """BPF_PROG_TEST_RUN of a loaded skb program on ``data`` with the __sk_buff ``ctx``
    (zero bytes after it): (retval, data_out, ctx_out)."""
    lib = libbpf()
    f = lib.bpf_prog_test_run_opts
    f.restype, f.argtypes = ctypes.c_int, (ctypes.c_int, ctypes.POINTER(_TestRunOpts))
    data_in = ctypes.create_string_buffer(data, len(data))
    data_out = ctypes.create_string_buffer(len(data) + 4096)
    ctx_in = ctypes.create_string_buffer(ctx.ljust(SKB_CTX_SIZE, b"\0"), SKB_CTX_SIZE)
    ctx_out = ctypes.create_string_buffer(SKB_CTX_SIZE)
    opts = _TestRunOpts(sz=ctypes.sizeof(_TestRunOpts), data_in=ctypes.addressof(data_in),
                        data_out=ctypes.addressof(data_out), data_size_in=len(data),
                        data_size_out=len(data_out), ctx_in=ctypes.addressof(ctx_in),
                        ctx_out=ctypes.addressof(ctx_out), ctx_size_in=SKB_CTX_SIZE,
                        ctx_size_out=SKB_CTX_SIZE, repeat=1)
    if f(prog_fd, ctypes.byref(opts)):
        err = ctypes.get_errno()
        raise KernelError(err, f"BPF_PROG_TEST_RUN of prog fd {prog_fd}: {os.strerror(err)}")
    return opts.retval, data_out.raw[:opts.data_size_out], ctx_out.raw[:opts.ctx_size_out]
