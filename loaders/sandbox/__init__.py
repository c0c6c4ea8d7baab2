"""Polygon-compatible sandbox: a deterministic synthetic market served over REST and S3."""

from loaders.sandbox.market import Market, MarketConfig

__all__ = ["Market", "MarketConfig"]
