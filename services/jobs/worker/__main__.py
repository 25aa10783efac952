"""`python -m services.jobs.worker [--queues a,b]`: run a worker process for the given queues."""

from services.jobs.worker.runner import main

main()
