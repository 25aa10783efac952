"""The gateway's reflection service: grpcurl and other clients discover every Switchboard API on :8080.

Each service serves reflection for its own APIs on its own port, but one reflection stream through the
gateway reaches one upstream. So the gateway routes `/grpc.reflection.*` here instead: a small gRPC server
answering reflection (v1 and v1alpha) from the descriptor set Envoy transcodes with, for every
`switchboard.*` service in it. It needs no Redis and no other service.

The same process hosts the body sink (`body_sink.py`), a plain HTTP/1.1 listener on a second port that
drains request bodies over a route's limit so that every client reads the gateway's 413.
"""
