"""Local emulators of the HubSpot, Brevo, Calendly and Stripe APIs (SPEC §5.3).

Nothing here imports product code, and no product code imports this package: an emulator that shared
our clients' code would share their bugs and hide them.
"""
