"""The BigQuery backend every part that talks to BigQuery shares: where queries run (settings), the client
in a bounded thread pool with short deadlines (backend), and the sample dataset `make run` seeds.

The bigquery service runs queries through it; analytics exports to it; the admin service's connection test
checks it. None of them imports another's internals: this package is theirs alike.
"""
