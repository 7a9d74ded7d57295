"""Test support shipped with the package: the real Kubernetes control plane for tests and dev."""
