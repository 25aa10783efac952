"""A taskiq middleware that gives each attempt its queue policy's timeout."""

from __future__ import annotations

from taskiq import TaskiqMessage, TaskiqMiddleware

from services.jobs.queues import PolicyBook


class AttemptTimeoutMiddleware(TaskiqMiddleware):
    def __init__(self, policies: PolicyBook) -> None:
        super().__init__()
        self._policies = policies

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        queue = message.labels.get("queue")
        if queue in self._policies.queues:
            message.labels["timeout"] = self._policies[queue].timeout_ms / 1000
        return message
