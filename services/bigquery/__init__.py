"""The BigQuery service: long-running queries on the query queue, and the result cache."""
