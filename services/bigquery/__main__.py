"""`python -m services.bigquery`: run the bigquery service."""

from services.bigquery.server import build
from services.bigquery.settings import BigQuerySettings
from services.runtime.server import run_service

run_service("bigquery", BigQuerySettings, build)
