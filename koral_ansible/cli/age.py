"""AGE columns: how long ago a timestamp was, in kubectl's words ("45s", "3m20s", "5h", "2d3h").

Follows kubernetes/kubernetes staging/src/k8s.io/apimachinery/pkg/util/duration/duration.go
(HumanDuration), which kubectl's printers use for AGE.
"""

from __future__ import annotations

from datetime import UTC, datetime


def human_duration(seconds: float) -> str:
    """apimachinery's HumanDuration: ~2-3 significant figures of a duration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def age(timestamp: str | None, now: datetime | None = None) -> str:
    """The age of an ISO 8601 timestamp (koral's state times), "" when there is none."""
    if not timestamp:
        return ""
    try:
        then = datetime.fromisoformat(timestamp)
    except ValueError:
        return "<invalid>"
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return human_duration(((now or datetime.now(UTC)) - then).total_seconds())
