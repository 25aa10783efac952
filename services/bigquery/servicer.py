"""BigQuery RPCs: proto ⇄ domain, nothing more."""

from __future__ import annotations

from switchboard.bigquery.v1 import bigquery_pb2_grpc


class BigQueryServicer(bigquery_pb2_grpc.BigQueryServiceServicer):
    """The RPCs land with the BigQuery issue.

    Until then each answers UNIMPLEMENTED, 501 through the gateway.
    """


class QueryServicer(bigquery_pb2_grpc.QueryServiceServicer):
    """The RPCs land with the BigQuery issue.

    Until then each answers UNIMPLEMENTED, 501 through the gateway.
    """
