"""Plumbing every Switchboard service stands on, a module per concern.

Nothing here knows about jobs, rate limits or queries: settings, the Redis pool, logging, the request
context, the error hierarchy and its gRPC mapping, server bootstrap, health and client channels.
"""
