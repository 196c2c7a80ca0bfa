"""Wiring: the Dagster definitions and the ``lifecycle`` command line."""
