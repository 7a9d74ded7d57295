"""Composition roots: one module per mode wires the stages and runs them in one TaskGroup."""
