"""Booking meetings from a call: slots, providers (built-in SQL, Google Calendar), the
realtime brain's tools and the booking link. See README "Booking".

The core (`core.py`) is pure; `service.py` joins it to a provider; `tools.py` is what
the model calls; `web.py` serves the booking link. Nothing here imports `ops/`.
"""
