"""Tenant-cluster reconcilers: Nodes -> Addresses, Services -> LoadBalancers, status back-flow."""
