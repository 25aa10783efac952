"""The gateway: Envoy's configuration, rendered from one template for local runs and for Kubernetes, and
the reflection service Envoy routes `/grpc.reflection.*` to (`services.gateway.reflection`)."""
