"""Standalone mode without Kubernetes: the manager's reconcilers over an in-memory API server fed
from files, one data-plane node for the whole host, management Services persisted in a state
folder so that addresses survive restarts."""
