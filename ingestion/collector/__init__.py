"""The collector: the intake service for web forms and Calendly / Stripe webhooks (SPEC §5.2)."""

from ingestion.collector.app import create_collector_app

__all__ = ["create_collector_app"]
