"""The text conversation agent for SMS (and email): intent, decision, reply."""
