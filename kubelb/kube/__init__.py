"""The only Kubernetes client layer: informers, caches, work queues, status writers, leases."""
