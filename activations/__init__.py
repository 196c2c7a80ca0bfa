"""Reverse ETL: destination clients for HubSpot and Brevo and the diff-based sync engine (docs/sync-engine.md).

Knows nothing of Dagster or of ingestion: it reads desired state from the warehouse and writes to the APIs.
"""
