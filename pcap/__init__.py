"""Capture replay through tc programs: ``pcapio`` reads and writes pcap and pcapng,
``outputs`` decides how each output file is written (renamed into place, or streamed
into a device, FIFO or standard output), ``tcsim`` is the command (and its ``Replay``
class); the replay loop and the capture I/O's per-packet work are C, compiled into
``pyebpf._core`` from ``tcreplay.pxi`` and ``capio.pxi``.  Importable as
``pyebpf.pcap``."""
