"""Capture replay through tc programs: ``pcapio`` reads and writes pcap and pcapng,
``outputs`` decides how each output file is written (renamed into place, or streamed
into a device, FIFO or standard output), ``report`` reads and writes the report's lines
(their keys and defaults), ``tcsim`` is the command (and its ``Replay`` class); the replay loop and the capture I/O's per-packet work are C, ``tcreplay`` (an
extension built on the core's C interface, ``pyebpf/_core.pxd``, with ``capio.pxi``).
Importable as ``pyebpf.pcap``."""
