"""Envoy xDS: the pure IR -> Envoy translator (`translate`), snapshots, the per-node cache and the
ADS gRPC server. The IR is the only input; nothing here imports the API models or Kubernetes."""
