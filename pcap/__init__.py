"""Capture replay through tc programs: ``pcapio`` reads and writes pcap and pcapng,
``tcsim`` is the command (and its ``Replay`` class); the replay loop itself is C,
``tcreplay`` (an extension built on the core's C interface, ``pyebpf/_core.pxd``).
Importable as ``pyebpf.pcap``."""
