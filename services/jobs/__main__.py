"""`python -m services.jobs`: run the jobs service."""

from services.jobs.server import build
from services.jobs.settings import JobsSettings
from services.runtime.server import run_service

run_service("jobs", JobsSettings, build)
