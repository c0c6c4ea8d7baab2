"""Fault trials for QuantMini: kill -9 at each on-disk phase, bad input, hostile tickers, full disks.

`python -m chaos` (`make chaos`) runs the whole bounded suite and prints a table; `chaos.killer` is the
wrapper that runs one `quantmini` command and kills it at a chosen phase (used by the fast tests too).
"""
