"""The gateway: Envoy's configuration, rendered from one template for local runs and for Kubernetes."""
