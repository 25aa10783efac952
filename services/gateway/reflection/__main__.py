"""`python -m services.gateway.reflection`: serve reflection for the gateway."""

from services.gateway.reflection.server import run

run()
