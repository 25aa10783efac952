"""The task catalog: which tasks exist and on which queues they run, registered on a broker.

The built-in tasks (the diagnostics, when enabled) are registered here, and so are a team's own tasks:
a module outside this repo declares them with the `task` decorator, and a worker imports it
(`WORKER_TASK_MODULES=myapp.tasks` or `--tasks myapp.tasks`). Such a module needs only this public API:

    from services.jobs.catalog import task

    @task(queue="analytics", name="myapp.hello")
    async def hello(name: str) -> dict[str, str]:
        return {"greeting": f"hello {name}"}

A task takes the job's payload as keyword arguments and may ask for its `JobContext`
(services.jobs.context). The worker registers the tasks it imported (services.jobs.registry), so the Jobs
API accepts them although the API itself never imports the team's code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from services.jobs import diagnostics
from services.jobs.broker import ALL_QUEUES, SwitchboardBroker
from services.jobs.queues import QUEUE_NAMES
from services.jobs.registry import MAX_TASK_NAME_LENGTH, MAX_TASKS_PER_WORKER, TASK_NAME_PATTERN

TaskFunction = TypeVar("TaskFunction", bound=Callable[..., Any])


class TaskDeclarationError(ValueError):
    """A task declared with a bad name or queue, twice, or a task module that cannot be imported."""


@dataclass(frozen=True)
class DeclaredTask:
    name: str
    queues: str
    """Comma-separated queue names, or `*` for every queue."""
    function: Callable[..., Any]


DECLARED_TASKS: list[DeclaredTask] = []
"""Every task a `task` decorator declared so far in this process, in declaration order."""


def task(*, name: str, queue: str | Sequence[str] = ALL_QUEUES) -> Callable[[TaskFunction], TaskFunction]:
    """Declares the decorated function as the task `name` on `queue` (a queue, several, or `*` for all)."""
    queues = [queue] if isinstance(queue, str) else list(queue)
    if not TASK_NAME_PATTERN.match(name):
        raise TaskDeclarationError(
            f"task name {name!r}: use 1 to {MAX_TASK_NAME_LENGTH} letters, digits and . _ : - "
            "(e.g. 'myapp.hello')"
        )
    if queues != [ALL_QUEUES]:
        unknown = sorted(set(queues) - set(QUEUE_NAMES))
        if not queues or unknown:
            raise TaskDeclarationError(
                f"task {name!r}: unknown queue(s) {unknown}; use some of {', '.join(QUEUE_NAMES)} or '*'"
            )
    if name in diagnostics.TASKS or any(declared.name == name for declared in DECLARED_TASKS):
        raise TaskDeclarationError(f"task {name!r} is declared twice; give each task its own name")

    def declare(function: TaskFunction) -> TaskFunction:
        DECLARED_TASKS.append(DeclaredTask(name, ",".join(queues), function))
        return function

    return declare


def import_task_modules(modules: Sequence[str]) -> None:
    """Imports a team's task modules, so their `task` declarations run."""
    for module in modules:
        try:
            importlib.import_module(module)
        except TaskDeclarationError:
            raise
        except Exception as error:
            raise TaskDeclarationError(
                f"cannot import task module {module!r} ({type(error).__name__}: {error}); "
                "is its package on PYTHONPATH?"
            ) from error


def register_tasks(broker: SwitchboardBroker, *, diagnostics_enabled: bool) -> None:
    """Registers the built-in tasks and every declared one on `broker` (at most MAX_TASKS_PER_WORKER)."""
    count = len(DECLARED_TASKS) + (len(diagnostics.TASKS) if diagnostics_enabled else 0)
    if count > MAX_TASKS_PER_WORKER:
        raise TaskDeclarationError(
            f"{count} tasks; a worker registers at most {MAX_TASKS_PER_WORKER}: "
            "split the task modules across workers"
        )
    if diagnostics_enabled:
        for name, function in diagnostics.TASKS.items():
            broker.register_task(function, task_name=name, queues=ALL_QUEUES)  # type: ignore[arg-type]
    for declared in DECLARED_TASKS:
        broker.register_task(declared.function, task_name=declared.name, queues=declared.queues)
