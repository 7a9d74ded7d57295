"""What the tests share to drive the local control plane: clusters with helpers for namespaces,
Nodes and ServiceAccount kubeconfigs, and process checks. Not shipped in the package."""
