"""A team's task package, written outside the repo: how a team adds its own tasks to Switchboard."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path


def write_team_package(root: Path) -> str:
    """A team's task module outside the repo; → its module name (unique, so tests never share it)."""
    package = f"team_{uuid.uuid4().hex[:8]}"
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text("")
    (root / package / "tasks.py").write_text(
        textwrap.dedent(
            """
            from taskiq import TaskiqDepends

            from services.jobs.catalog import task
            from services.jobs.context import JobContext, current_job


            @task(queue="analytics", name="team.greet")
            async def greet(name: str, job: JobContext = TaskiqDepends(current_job)) -> dict[str, object]:
                await job.set_progress(100)
                return {"greeting": f"hello {name}", "attempt": job.attempt}
            """
        )
    )
    return f"{package}.tasks"
