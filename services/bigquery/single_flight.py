"""Single flight across service processes: identical queries that miss the cache at once share one job.

The first to miss claims the query in Redis (`<prefix>:query:flight:<digest>`, SET NX with a TTL) and
records in the claim the id of the job it is about to submit; that id, random per claimant, is also the
owner token. Every other process that misses meanwhile finds the claim and attaches to that job instead of
starting its own. The claim is given up (deleted only if it still names the same job) once the result is
cached or the job failed, so the next identical query starts afresh; a claimant that died before either
is forgotten when the claim expires.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

# Claims the query for ARGV[1] unless someone holds it: → {1, ARGV[1]} or {0, the holder's job id}.
_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, ARGV[1]}
end
return {0, redis.call('GET', KEYS[1])}
"""
# Gives up the claim if it is still the one for job ARGV[1]: → 1 if deleted.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class Flight:
    job_id: str
    """The job every identical query of this flight waits on."""
    owner: bool
    """True for the claimant: it submits the job; the others only attach."""


class SingleFlight:
    """Claims in Redis; every call may raise redis-py's errors (the call scope answers 503)."""

    def __init__(self, redis: Redis, *, prefix: str, claim_seconds: float) -> None:
        self._prefix = prefix
        self._claim_ms = max(1, int(claim_seconds * 1000))
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)

    def key_for(self, digest: str) -> str:
        return f"{self._prefix}:query:flight:{digest}"

    async def join(self, digest: str, new_job_id: str) -> Flight:
        """The flight of query `digest`: a new one, owned, for `new_job_id`, or the one under way."""
        claimed, job_id = await self._claim(keys=[self.key_for(digest)], args=[new_job_id, self._claim_ms])
        holder = job_id.decode() if isinstance(job_id, bytes) else str(job_id)
        return Flight(job_id=holder, owner=bool(claimed))

    async def release(self, digest: str, job_id: str) -> bool:
        """Ends the flight of `job_id` (a later claim, for another job, is left alone)."""
        return bool(await self._release(keys=[self.key_for(digest)], args=[job_id]))
