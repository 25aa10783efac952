"""The task catalog: which tasks exist and on which queues they run, registered on a broker.

The built-in tasks (the diagnostics, when enabled) are registered here; the analytics, bigquery and
ratelimit issues register their domain's tasks here too.
"""

from __future__ import annotations

from services.jobs import diagnostics
from services.jobs.broker import ALL_QUEUES, SwitchboardBroker


def register_tasks(broker: SwitchboardBroker, *, diagnostics_enabled: bool) -> None:
    if diagnostics_enabled:
        for name, function in diagnostics.TASKS.items():
            broker.register_task(function, task_name=name, queues=ALL_QUEUES)  # type: ignore[arg-type]
