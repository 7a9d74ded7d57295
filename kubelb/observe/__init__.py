"""Observability: Prometheus metrics with upstream names, logging set-up, health probes."""
