"""The throttles of a worker's queues: the rate-limit rules their policies name, read from the rate-limit
service, the last known kept while it cannot be reached."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

from services.jobs.queues import PolicyBook
from services.limit_algorithms import Throttle

logger = logging.getLogger(__name__)

RulesReader = Callable[[], Awaitable[Mapping[str, Throttle]]]


class ThrottleBook:
    def __init__(self, policies: PolicyBook, queues: Sequence[str], read_rules: RulesReader | None) -> None:
        self._policies = policies
        self._queues = tuple(queues)
        self._read_rules = read_rules
        self.throttles: dict[str, Throttle] = {}
        self.known = asyncio.Event()
        """Set once the rules were read (or none is needed): a throttled queue starts nothing before."""
        if read_rules is None:
            self.known.set()
        self._unreachable = False

    def throttled_queues(self) -> list[str]:
        return [queue for queue in self._queues if self._policies[queue].rate_limit_rule]

    async def refresh(self) -> None:
        """Reads the rate-limit rules the queues' policies name; keeps the last ones if that fails."""
        if self._read_rules is None or not self.throttled_queues():
            return
        try:
            rules = await self._read_rules()
        except Exception as error:  # the rate-limit service is another process: any failure is "not now"
            if not self._unreachable:
                logger.warning(
                    "cannot read rate-limit rules; keeping the last known",
                    extra={"error": str(error), "throttled_queues": self.throttled_queues()},
                )
            self._unreachable = True
            return
        if self._unreachable:
            logger.info("rate-limit rules readable again")
        self._unreachable = False
        throttles = {}
        for queue in self._queues:
            name = self._policies[queue].rate_limit_rule
            if name and name in rules:
                throttles[queue] = rules[name]
            elif name:
                logger.warning(
                    "queue's rate-limit rule does not exist; not throttled",
                    extra={"queue": queue, "rule": name},
                )
        self.throttles = throttles
        self.known.set()
