"""Local emulators of the HubSpot, Brevo, Calendly and Stripe APIs (docs/interfaces.md#sandbox).

Nothing here imports product code, and no product code imports this package: an emulator that shared
our clients' code would share their bugs and hide them.
"""
