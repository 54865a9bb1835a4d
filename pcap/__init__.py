"""pcap replay through tc programs and the ``tcsim`` command.  Importable as ``pyebpf.pcap``."""
