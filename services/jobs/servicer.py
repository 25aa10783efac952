"""Jobs RPCs: proto ⇄ domain, nothing more."""

from __future__ import annotations

from switchboard.jobs.v1 import jobs_pb2_grpc


class JobsServicer(jobs_pb2_grpc.JobsServiceServicer):
    """The RPCs land with the job queues issue (#3).

    Until then each answers UNIMPLEMENTED, 501 through the gateway.
    """
