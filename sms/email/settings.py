"""The `[email]` config section: the SMTP server, the sender, and the CAN-SPAM footer."""

from __future__ import annotations

import msgspec


class EmailSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # Empty host: email is not configured (email touches are skipped and stay due).
    host: str = ""
    port: int = 587
    # STARTTLS after connecting (port 587), or TLS from the first byte (port 465).
    starttls: bool = True
    tls: bool = False
    username: str = ""
    password: str = ""
    from_address: str = ""
    reply_to: str = ""
    # CAN-SPAM: every commercial email carries the sender's valid postal address.
    postal_address: str = ""
    # Public HTTPS base of this server, for unsubscribe links (Gmail/Yahoo want HTTPS).
    unsubscribe_base_url: str = ""
    # HMAC key of unsubscribe tokens; empty: one is generated and kept in the database.
    unsubscribe_secret: str = ""
    # Who gets handoff alerts by email; empty: none.
    owner_address: str = ""
    # A shared secret the inbound-mail route requires as `?token=`; empty: none asked.
    inbound_token: str = ""
    timeout_s: float = 20.0
    # Mails claimed per poll, poll interval, and the retry policy for SMTP trouble.
    batch: int = 50
    poll_s: float = 1.0
    lease_s: float = 120.0
    max_attempts: int = 8
    backoff_base_s: float = 30.0
    backoff_cap_s: float = 3600.0

    def __post_init__(self) -> None:
        if not 0 < self.port <= 65535:
            raise ValueError("email.port must be 1..65535")
        if self.tls and self.starttls:
            raise ValueError("email: set tls (port 465) or starttls (port 587), not both")
        if self.host and not self.from_address:
            raise ValueError("email.from_address is required when email.host is set")
        if self.host and not self.postal_address:
            raise ValueError("email.postal_address is required (CAN-SPAM) when email.host "
                             "is set")
        if self.host and not self.unsubscribe_base_url.startswith("https://") and \
                not self.unsubscribe_base_url.startswith("http://127.0.0.1"):
            raise ValueError("email.unsubscribe_base_url must be an https:// URL when "
                             "email.host is set")
        if not 0 < self.timeout_s <= 300 or self.lease_s <= self.timeout_s:
            raise ValueError("email.timeout_s must be in (0, 300] and below lease_s")
        if not 1 <= self.batch <= 1000 or not 0 < self.poll_s <= 60:
            raise ValueError("email.batch must be 1..1000 and poll_s in (0, 60]")
        if self.max_attempts < 1 or self.backoff_base_s <= 0 or \
                self.backoff_cap_s < self.backoff_base_s:
            raise ValueError("email retry: max_attempts >= 1, base > 0, cap >= base")

    @property
    def configured(self) -> bool:
        return bool(self.host)
