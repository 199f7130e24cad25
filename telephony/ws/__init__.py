"""Carrier-neutral WebSocket plumbing: fast inbound dispatch, batched outbound frames.

Kept apart from `telephony/twilio/` because nothing here knows Twilio: any leg
that speaks over an aiohttp WebSocket (a LiveKit bridge, a custom carrier) uses
the same reader and writer, and the load bench measures them in one place.
"""
