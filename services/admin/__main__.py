"""`python -m services.admin`: run the admin service."""

from services.admin.server import build
from services.admin.settings import AdminSettings
from services.runtime.server import run_service

run_service("admin", AdminSettings, build)
