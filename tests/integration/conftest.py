"""Fixtures every integration module may use."""

from tests.integration.browser import browser, page

__all__ = ["browser", "page"]
