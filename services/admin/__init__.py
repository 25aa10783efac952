"""The admin service: run-time settings, the connection test, and (later) the queue dashboard."""
