"""`python -m services.ratelimit`: run the ratelimit service."""

from services.ratelimit.server import build
from services.ratelimit.settings import RateLimitSettings
from services.runtime.server import run_service

run_service("ratelimit", RateLimitSettings, build)
