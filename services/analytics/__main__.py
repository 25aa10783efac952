"""`python -m services.analytics`: run the analytics service."""

from services.analytics.server import build
from services.analytics.settings import AnalyticsSettings
from services.runtime.server import run_service

run_service("analytics", AnalyticsSettings, build)
