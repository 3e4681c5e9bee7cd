"""adanns index kinds in the benchmark, one module each (OPQ and binary codes plug in here)."""
