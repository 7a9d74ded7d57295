"""A local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) on 127.0.0.1:
what `kubelb dev-cluster` runs, and what the tests run against."""
