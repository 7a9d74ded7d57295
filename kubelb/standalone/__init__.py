"""Standalone mode without Kubernetes: LoadBalancers from files, addresses from a local pool,
assignments persisted in a state folder, one data-plane node for the whole host."""
