"""Kubernetes admission webhook: pure review, trust cache, app."""
