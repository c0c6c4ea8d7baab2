"""Polygon-compatible sandbox: a deterministic synthetic market served over REST and S3.

The servers need the `sandbox` extra (moto, starlette, uvicorn); importing the package without it raises
`loaders.extras.MissingExtra` naming the install command.
"""

from loaders.extras import require

require("sandbox", "the sandbox (`quantmini sandbox`, `quantmini demo`)")

from loaders.sandbox.market import Market, MarketConfig  # noqa: E402

__all__ = ["Market", "MarketConfig"]
