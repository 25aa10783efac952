"""Starts Switchboard's processes on one machine: Redis, the services, Envoy.

`make run` uses it to bring up the whole stack (`python -m devstack`); the tests use the same pieces to
start real processes on free ports in temporary folders. Every start waits on the process's own
readiness (Redis PING, gRPC health, Envoy's /ready), never on a sleep.
"""
