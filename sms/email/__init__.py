"""The email channel: SMTP sending, message building, unsubscribe tokens, inbound mail."""
