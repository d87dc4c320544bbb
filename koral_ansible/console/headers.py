"""Security headers on every response: a CSP without inline script, no framing, no caching of pages."""

from __future__ import annotations

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)

COMMON: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


def with_security_headers(headers: list[tuple[bytes, bytes]], path: str) -> list[tuple[bytes, bytes]]:
    """``headers`` plus the common ones; every page but the static files is ``no-store`` (pages carry
    the CSRF token, the kubeconfig carries credentials)."""
    names = {k.lower() for k, _ in headers}
    out = [*headers, *(h for h in COMMON if h[0] not in names)]
    if not path.startswith("/static/") and b"cache-control" not in names:
        out.append((b"cache-control", b"no-store"))
    return out
