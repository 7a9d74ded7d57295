"""Data-plane benchmark: direct vs Envoy (configured by our translator) vs the Python data plane."""
