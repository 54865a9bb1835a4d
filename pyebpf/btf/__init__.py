"""BTF: the types of a clang-compiled BPF object (``types``) and the function and
source-line records of its ``.BTF.ext`` section (``ext``).

``Btf.parse(data)`` reads a ``.BTF`` section; :func:`decode` turns a map's key or value
bytes into Python values by their type, raising :class:`pyebpf.errors.BtfError`.
"""
from __future__ import annotations

from . import ext
from .types import (BTF_VAR_STATIC, INT_BOOL, INT_SIGNED, MAGIC, MAX_RESOLVE_DEPTH, Btf,
                    Field, Kind, Member, Type, VarSecinfo, decode)

__all__ = ["Btf", "Kind", "Type", "Member", "VarSecinfo", "Field", "decode", "ext", "MAGIC",
           "MAX_RESOLVE_DEPTH", "INT_SIGNED", "INT_BOOL", "BTF_VAR_STATIC"]
