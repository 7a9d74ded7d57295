"""Benchmarks: scenarios, load drivers and reports. Never imported by kubelb."""
