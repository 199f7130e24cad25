"""X-Twilio-Signature: checking what Twilio sends us, and signing as Twilio does.

Twilio signs the URL *it* requested (HMAC-SHA1 over the full URL followed by
the sorted form parameters, base64). Behind a proxy or tunnel that is the
public URL, not the one our server sees, so the caller always passes the URL to
check; this module never guesses it. The WebSocket upgrade of a Media Stream is
signed over the `wss://` URL with no parameters.
"""

from __future__ import annotations

from collections.abc import Mapping

from twilio.request_validator import SIGNATURE_HEADER, RequestValidator

__all__ = ["SIGNATURE_HEADER", "SignatureChecker"]


class SignatureChecker:
    """Validates and computes X-Twilio-Signature for one auth token."""

    __slots__ = ("_validator",)

    def __init__(self, auth_token: str) -> None:
        if not auth_token:
            raise ValueError("auth_token is required to check signatures")
        self._validator = RequestValidator(auth_token)

    def valid(self, url: str, params: Mapping[str, str] | None, signature: str | None) -> bool:
        """True if `signature` is Twilio's for `url` + `params` (None/{} for the WS upgrade).

        The SDK also tries the URL with and without the default port, because
        Twilio is not consistent about it; a missing signature is never valid.
        """
        if not signature:
            return False
        # Passed as given: a MultiDict keeps repeated keys, which Twilio signs too.
        return bool(self._validator.validate(url, params if params is not None else {}, signature))

    def sign(self, url: str, params: Mapping[str, str] | None = None) -> str:
        """The signature Twilio would send for this request (the sim and tests use it)."""
        return str(self._validator.compute_signature(url, params if params is not None else {}))
