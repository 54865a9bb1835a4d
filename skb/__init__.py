"""The sk_buff model: packet buffer and metadata, ``__sk_buff`` access, skb helpers.

Importable as ``pyebpf.skb``.  Its contents arrive with the program types
``socket_filter``, ``sched_cls`` and ``sched_act``.
"""
