"""Businesses served by one server: who answers, how, and what their plan allows.

A business is chosen per call by the number called (inbound) or by the job or
campaign (outbound); `registry.BusinessRegistry` makes that choice, `plans` says
what a plan tier allows, `settings` is the `[[businesses]]` config shape.
"""
