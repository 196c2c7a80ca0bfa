"""The collector: the intake service for web forms and Calendly / Stripe webhooks."""

from ingestion.collector.app import create_collector_app

__all__ = ["create_collector_app"]
