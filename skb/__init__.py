"""The sk_buff model: packet buffer and metadata, ``__sk_buff`` access, skb helpers.

Importable as ``pyebpf.skb``.  The ``.pxi`` files (the packet model, the context
accessors and the helpers, all C) are compiled into ``pyebpf._core``; what each program
type may do with its context and which helpers it may call is ``pyebpf.verifier.rules``.
"""
