"""The fault checker behind scripts/chaos: seeded workload and faults against the real processes,
a client-side history, and a checker that holds every client's answers against the money."""
