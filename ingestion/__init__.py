"""Data in: the collector (forms and webhooks into the landing zone) and the dlt sources into DuckDB."""
