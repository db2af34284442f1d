"""The foundation: user errors, the generic registry, YAML input, signals, threads, hooks, pure
statistics, the runtime (seeds, device, dtype, memory) and the small interfaces (Progress, Table).

Imports nothing else from initbench; every other package may import it.
"""
