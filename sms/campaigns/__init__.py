"""Drip campaigns: the campaign file format, the scheduler core and its async shell."""
