"""Job workers: `python -m services.jobs.worker --queues analytics,bigquery` runs the given queues."""
