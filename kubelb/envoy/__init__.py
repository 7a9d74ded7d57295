"""Running Envoy: binary discovery, bootstrap rendering, the process supervisor and deployers."""
