"""Every task a job can run, registered on the broker with the queues it may run on."""

from __future__ import annotations

from services.jobs import diagnostics
from services.jobs.broker import ALL_QUEUES, SwitchboardBroker


def register_tasks(broker: SwitchboardBroker, *, diagnostics_enabled: bool) -> None:
    if diagnostics_enabled:
        for name, function in diagnostics.TASKS.items():
            broker.register_task(function, task_name=name, queues=ALL_QUEUES)  # type: ignore[arg-type]
    # The analytics, bigquery and ratelimit issues register their domain's tasks here.
