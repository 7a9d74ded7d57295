"""KubeLB API models (kubelb.k8c.io/v1alpha1), well-known names, and CRD generation."""
