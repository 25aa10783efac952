"""The jobs service: job queues on taskiq and the Jobs API."""
