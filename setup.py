"""Build the compiled core.  Metadata lives in pyproject.toml.

PYEBPF_DEBUG=1 builds with Cython's bounds checks, line tracing and annotation on.
PYEBPF_QUICK_BUILD=1 compiles the C without optimisation: the same package in a
fraction of the compile time, for checks of what an install contains (the engine then
runs several times slower).
"""
import os
import runpy
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent
DEBUG = os.environ.get("PYEBPF_DEBUG") == "1"
QUICK = os.environ.get("PYEBPF_QUICK_BUILD") == "1"

# The compiled core's constants (internal op ids, map types, TC_ACT_*, flags) are
# generated from the one ISA table into a .pxd.
isa = runpy.run_path(str(HERE / "pyebpf" / "isa.py"))
pxd = HERE / "pyebpf" / "_isa_defs.pxd"
if not pxd.exists() or pxd.read_text() != isa["pxd_source"]():
    pxd.write_text(isa["pxd_source"]())
# ... and the interpreter's dispatch macros (threaded code where the compiler has
# labels-as-values) into a C header.
dispatch = HERE / "pyebpf" / "_dispatch.h"
if not dispatch.exists() or dispatch.read_text() != isa["dispatch_header"]():
    dispatch.write_text(isa["dispatch_header"]())
# The interpreter's instruction cases are written out in _core.pyx (one C switch)
# between marker lines; a changed table rewrites them there.
core = HERE / "pyebpf" / "_core.pyx"
text = core.read_text()
if isa["with_core_regions"](text) != text:
    core.write_text(isa["with_core_regions"](text))

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
    "linetrace": DEBUG,
}
macros = [("CYTHON_TRACE_NOGIL", "1")] if DEBUG else []
cflags = ["-O0", "-g"] if DEBUG else ["-O0"] if QUICK else ["-O3"]
# vm_run is the interpreter loop's only caller: inlined into it, the loop runs ~1-2% more
# instructions per eBPF instruction (callgrind, bench/README.md), so it stays a function.
CORE_CFLAGS = [] if DEBUG else ["-fno-inline-functions-called-once"]

# The core's C interface: what another compilation unit may cimport from it.
interface = [str(p) for p in [HERE / "pyebpf" / "_core.pxd", pxd, HERE / "skb" / "skbuff.pxd",
                               dispatch]]
extensions = [
    # skb/*.pxi (the sk_buff model and its helpers), pyebpf/cbpf/cbpf_calls.pxi
    # (classic-only calls) and pyebpf/trace/tracing.pxi (tracing helpers) compile into
    # the core
    Extension("pyebpf._core", ["pyebpf/_core.pyx"], define_macros=macros,
              extra_compile_args=cflags + CORE_CFLAGS,
              depends=[*interface, *(str(p) for p in HERE.glob("skb/*.pxi")),
                       *(str(p) for p in HERE.glob("pyebpf/*.pxi")),
                       str(HERE / "pyebpf" / "crypto_aes.h"),
                       *(str(p) for p in HERE.glob("pyebpf/cbpf/*.pxi")),
                       *(str(p) for p in HERE.glob("pyebpf/trace/*.pxi"))]),
    # the pin file's map contents, walked in C on the core's C interface
    Extension("pyebpf.pin_format", ["pyebpf/pin_format.pyx"], define_macros=macros,
              extra_compile_args=cflags, depends=interface),
    # the verifier's register, whose copies are most of a path's state copies
    Extension("pyebpf.verifier.reg", ["pyebpf/verifier/reg.pyx"], extra_compile_args=cflags,
              depends=["pyebpf/verifier/reg.pxd"]),
    # the verifier's tristate numbers and scalar bounds (ALU results, branch outcomes), on
    # the register's fields: most of what a verifier step computes
    Extension("pyebpf.verifier.tnum", ["pyebpf/verifier/tnum.pyx"], extra_compile_args=cflags),
    # the verifier's states (C types, state.pxd) and their comparison, the precision walk
    # and the static checks of a program's structure: per instruction or per program
    # isa's forms and numbers as C globals for them (isaconst.pxd)
    Extension("pyebpf.verifier.isaconst", ["pyebpf/verifier/isaconst.pyx"],
              extra_compile_args=cflags, depends=["pyebpf/verifier/isaconst.pxd"]),
    Extension("pyebpf.verifier.structure", ["pyebpf/verifier/structure.pyx"],
              extra_compile_args=cflags, depends=["pyebpf/verifier/isaconst.pxd"]),
    Extension("pyebpf.verifier.state", ["pyebpf/verifier/state.pyx"], extra_compile_args=cflags,
              depends=["pyebpf/verifier/state.pxd"]),
    Extension("pyebpf.verifier.precision", ["pyebpf/verifier/precision.pyx"],
              extra_compile_args=cflags,
              depends=["pyebpf/verifier/reg.pxd", "pyebpf/verifier/state.pxd",
                       "pyebpf/verifier/isaconst.pxd"]),
    Extension("pyebpf.verifier.bounds", ["pyebpf/verifier/bounds.pyx"],
              extra_compile_args=cflags,
              depends=["pyebpf/verifier/reg.pxd", "pyebpf/verifier/isaconst.pxd"]),
    # the path walk's loop and checkpoints (the Interpreter's base): per instruction
    Extension("pyebpf.verifier.walk", ["pyebpf/verifier/walk.pyx"], extra_compile_args=cflags,
              depends=["pyebpf/verifier/reg.pxd", "pyebpf/verifier/state.pxd",
                       "pyebpf/verifier/isaconst.pxd"]),
    # a program's control flow and live registers, made for each program loaded
    Extension("pyebpf.verifier.flow", ["pyebpf/verifier/flow.pyx"], extra_compile_args=cflags,
              depends=["pyebpf/verifier/isaconst.pxd"]),
    # stack slot liveness: marked at each stack access, propagated at each path's end
    Extension("pyebpf.verifier.liveness", ["pyebpf/verifier/liveness.pyx"],
              extra_compile_args=cflags),
    # the precision walk's pass over a path's history
    Extension("pyebpf.verifier.backtrack", ["pyebpf/verifier/backtrack.pyx"],
              extra_compile_args=cflags),
    # tcsim's replay loop and capture I/O (pcap/capio.pxi): their own compilation unit,
    # on the core's C interface
    Extension("pyebpf.pcap.tcreplay", ["pyebpf/pcap/tcreplay.pyx"], define_macros=macros,
              extra_compile_args=cflags,
              depends=[*interface, *(str(p) for p in HERE.glob("pcap/*.pxi"))]),
]

setup(
    # a debug build generates its C elsewhere, so it never stands in for a release one
    ext_modules=cythonize(extensions, compiler_directives=directives, annotate=DEBUG,
                          include_path=[str(HERE), str(HERE / "skb"),
                                        str(HERE / "pyebpf" / "cbpf"),
                                        str(HERE / "pyebpf" / "trace")],
                          build_dir="build/debug" if DEBUG else None),
    package_dir={"pyebpf": "pyebpf", "pyebpf.skb": "skb", "pyebpf.pcap": "pcap"},
)
