"""Management-cluster reconcilers: tenants, LoadBalancers, port allocation, Envoy control."""
