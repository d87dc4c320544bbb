"""CloudStack request signing, as the management server verifies it.

The server sorts the request parameters by name (case-sensitive, like ``Collections.sort``),
leaves out ``signature``, joins ``name=value`` pairs with ``&`` where each value is encoded
with ``java.net.URLEncoder`` (UTF-8) and ``+`` replaced by ``%20``, lower-cases the whole
string, and compares base64(HMAC-SHA1(secret, string)) with the given signature in constant
time. With ``signatureVersion=3`` the ``expires`` parameter (``yyyy-MM-dd'T'HH:mm:ssZ``) must
parse and lie in the future.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

# java.net.URLEncoder leaves exactly these bytes alone (space becomes "+", then "%20").
_JAVA_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-*_")
_EXPIRES_FORMATS = ("%Y-%m-%dT%H:%M:%S%z",)  # SimpleDateFormat "yyyy-MM-dd'T'HH:mm:ssZ"


class SignatureError(Exception):
    """The request cannot be authenticated (answered with HTTP 401)."""


def java_urlencode(value: str) -> str:
    """``URLEncoder.encode(value, "UTF-8").replaceAll("\\+", "%20")``."""
    out: list[str] = []
    for byte in value.encode("utf-8"):
        if byte in _JAVA_SAFE:
            out.append(chr(byte))
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def canonical_string(params: Mapping[str, str]) -> str:
    """The lower-cased string that is signed (every parameter but ``signature``)."""
    pairs = [
        f"{name}={java_urlencode(params[name])}" for name in sorted(params) if name.lower() != "signature"
    ]
    return "&".join(pairs).lower()


def sign(params: Mapping[str, str], secret: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), canonical_string(params).encode("utf-8"), hashlib.sha1)
    return base64.b64encode(digest.digest()).decode("ascii")


def parse_expires(value: str) -> datetime:
    for fmt in _EXPIRES_FORMATS:
        try:
            parsed = datetime.strptime(value, fmt)
        except ValueError:
            continue
        return parsed
    raise SignatureError(f"Incorrect date format for Expires parameter: {value}")


def find_param(params: Mapping[str, str], name: str) -> str | None:
    """Parameter value by case-insensitive name (CloudStack matches apiKey, expires... that way)."""
    for key, value in params.items():
        if key.lower() == name.lower():
            return value
    return None


def check_timestamps(params: Mapping[str, str], now: datetime | None = None) -> None:
    """With enforce.post.requests.and.timestamps (ApiServer.verifyRequest): only
    ``signatureVersion=3`` with an ``expires`` at most 15 minutes ahead is accepted."""
    if find_param(params, "signatureversion") != "3":
        raise SignatureError("Signature Version must be 3, and should be along with the Expires parameter")
    expires = find_param(params, "expires")
    if not expires:
        raise SignatureError("missing Expires parameter")
    if parse_expires(expires) > (now or datetime.now(UTC)) + timedelta(minutes=15):
        raise SignatureError("Expiration parameter is set for too long")


def verify(params: Mapping[str, str], secret_for_key: Mapping[str, str], now: datetime | None = None) -> str:
    """Check a request; return its api key or raise SignatureError."""
    signature = find_param(params, "signature")
    api_key = find_param(params, "apikey")
    if not signature or not api_key:
        raise SignatureError("missing signature or apiKey")
    version = find_param(params, "signatureversion")
    if version == "3":
        expires = find_param(params, "expires")
        if not expires:
            raise SignatureError("missing Expires parameter")
        when = parse_expires(expires)
        if when <= (now or datetime.now(UTC)):
            raise SignatureError(f"Request expired -- ignoring ...sig: {signature}, apiKey: {api_key}")
    secret = secret_for_key.get(api_key)
    if secret is None:
        raise SignatureError(f"unable to find user with given api key {api_key}")
    expected = sign(params, secret)
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii", "replace")):
        raise SignatureError("signature mismatch")
    return api_key
