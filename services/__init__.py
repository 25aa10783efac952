"""Switchboard's services: one package per service, and `runtime`, the plumbing they share."""
