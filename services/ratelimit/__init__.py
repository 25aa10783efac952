"""The rate-limit service: the Redis limiter, its rules, and Envoy's rate-limit protocol."""
