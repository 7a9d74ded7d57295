"""Sources without an API server: files of KubeLB resources, watched and reloaded."""
