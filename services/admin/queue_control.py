"""The queues' paused flags through the jobs service's gRPC API (the admin service never reads its store)."""

from __future__ import annotations

import grpc

from services.runtime.errors import UnavailableError
from switchboard.jobs.v1 import jobs_pb2, jobs_pb2_grpc


class JobsQueueControl:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._jobs = jobs_pb2_grpc.JobsServiceStub(channel)

    async def paused_flags(self) -> dict[str, bool]:
        try:
            response = await self._jobs.ListQueues(jobs_pb2.ListQueuesRequest())
        except grpc.aio.AioRpcError as error:
            raise _unavailable("read the queues' paused flags", error) from None
        return {queue.name: queue.paused for queue in response.queues}

    async def set_paused(self, queue: str, paused: bool) -> None:
        try:
            if paused:
                await self._jobs.PauseQueue(jobs_pb2.PauseQueueRequest(name=queue))
            else:
                await self._jobs.ResumeQueue(jobs_pb2.ResumeQueueRequest(name=queue))
        except grpc.aio.AioRpcError as error:
            raise _unavailable(f"{'pause' if paused else 'resume'} queue {queue!r}", error) from None


def _unavailable(action: str, error: grpc.aio.AioRpcError) -> UnavailableError:
    return UnavailableError(
        f"could not {action} through the jobs service: {error.code().name}: {str(error.details())[:300]}"
    )
