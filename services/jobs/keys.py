"""The jobs store's Redis key layout: how keys are named, and why no two can collide.

The one rule that makes the layout collision-free by construction: **a client-chosen string (a job id) is
only ever the last part of a key, after a fixed segment that names the key's kind.** The kinds are fixed
words that no other key uses in that position, so `job:A:errors` is the hash of the job whose id is
`A:errors`, never the error list of job `A` (that is `errors:A`).

Everything about one queue shares the hash tag `{<queue>}`, so every Lua script, which only touches one
queue, works on Redis Cluster: its keys are in one slot. Queue names are fixed by the code (`QUEUE_NAMES`),
and the prefix may not contain braces, so the tag is always the queue.

Every key, its type, who writes it and when it expires: docs/key-layout.md (the one place).

Re-sent transitions (a command re-sent by `RedisMux` after its connection dropped before the reply) are
idempotent: a claim carries a token (the lease token), a finish carries the lease token and the job keeps
the last outcome per lease, an operator call carries a token whose reply is kept 60 s, and the rest
(heartbeat, release, reclaim, progress, retention) find nothing left to do the second time.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QueueKeys:
    """The keys of one queue under a prefix."""

    prefix: str
    queue: str

    @property
    def base(self) -> str:
        """What every key of the queue starts with; KEYS[1] of every script."""
        return f"{self.prefix}:{{{self.queue}}}:"

    def job(self, job_id: str) -> str:
        return f"{self.base}job:{job_id}"

    def errors(self, job_id: str) -> str:
        return f"{self.base}errors:{job_id}"

    def state_index(self, state: str) -> str:
        return f"{self.base}s:{state}"

    def claim_record(self, worker: str) -> str:
        return f"{self.base}claim:{worker}"

    def operation(self, token: str) -> str:
        return f"{self.base}op:{token}"

    def logs(self, job_id: str) -> str:
        return f"{self.base}logs:{job_id}"

    def state_search_index(self, state: str) -> str:
        """Jobs in one state by creation time (the search index; `s:<state>` is by time in the state)."""
        return f"{self.base}ix:state:{state}"

    def task_index(self, task: str) -> str:
        """Jobs of one task by creation time (the search index)."""
        return f"{self.base}ix:task:{task}"

    def word_index(self, kind: str, word: str) -> str:
        """Jobs filed under a word of their `payload` or their last `error`, by creation time."""
        return f"{self.base}ix:{kind}:{word}"

    def minute(self, minute_ms: int) -> str:
        """The metrics history of the minute starting at `minute_ms`."""
        return f"{self.base}m:{minute_ms}"

    def named(self, name: str) -> str:
        """One of the queue's fixed keys: wait, delayed, active, all, seq, marker, paused, hold, throttle."""
        return f"{self.base}{name}"
