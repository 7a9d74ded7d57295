"""Control-plane benchmarks: convergence of tenant Services and manager scale (issue 5)."""
