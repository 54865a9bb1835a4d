"""Build the compiled core.  Metadata lives in pyproject.toml.

PYEBPF_DEBUG=1 builds with Cython's bounds checks, line tracing and annotation on.
"""
import os
import runpy
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).parent
DEBUG = os.environ.get("PYEBPF_DEBUG") == "1"

# The interpreter's internal op ids are generated from the one ISA table.
isa = runpy.run_path(str(HERE / "pyebpf" / "isa.py"))
pxi = HERE / "pyebpf" / "_opcodes.pxi"
if not pxi.exists() or pxi.read_text() != isa["pxi_source"]():
    pxi.write_text(isa["pxi_source"]())

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
cflags = ["-O0", "-g"] if DEBUG else ["-O3"]

extensions = [
    # skb/*.pxi (the sk_buff model and its helpers), pcap/tcreplay.pxi (tcsim's
    # replay loop) and pyebpf/cbpf/cbpf_calls.pxi (classic-only calls) compile into the core
    Extension("pyebpf._core", ["pyebpf/_core.pyx"], define_macros=macros,
              extra_compile_args=cflags, depends=[str(p) for p in [*HERE.glob("skb/*.pxi"), *HERE.glob("pcap/*.pxi"),
                                               *HERE.glob("pyebpf/cbpf/*.pxi")]]),
]

setup(
    # a debug build generates its C elsewhere, so it never stands in for a release one
    ext_modules=cythonize(extensions, compiler_directives=directives, annotate=DEBUG,
                          include_path=[str(HERE / "skb"), str(HERE / "pcap"),
                                        str(HERE / "pyebpf" / "cbpf")],
                          build_dir="build/debug" if DEBUG else None),
    package_dir={"pyebpf": "pyebpf", "pyebpf.skb": "skb", "pyebpf.pcap": "pcap"},
)
