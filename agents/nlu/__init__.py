"""Small, local language understanding over caller transcripts (no model, no network)."""
