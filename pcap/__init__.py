"""Capture replay through tc programs: ``pcapio`` reads and writes pcap and pcapng,
``tcsim`` is the command (and its ``Replay`` class); the replay loop itself is C,
compiled into ``pyebpf._core`` from ``tcreplay.pxi``.  Importable as ``pyebpf.pcap``."""
