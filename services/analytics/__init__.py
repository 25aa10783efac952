"""The analytics service: event ingestion and aggregation."""
