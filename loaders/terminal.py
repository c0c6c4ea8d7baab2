"""The one place commands get their rich Console from.

In a terminal the console is rich's usual one (colour, the terminal's width, live progress). Without a
terminal (cron, CI logs, pipes, `| tee`) rich would fall back to 80 columns and abbreviate table cells
("stock...", "2024-..."); this console is instead wide (`PLAIN_WIDTH`), plain (no colour, markup is
stripped) and never wraps long lines, so tables keep their natural width and every line can be grepped.

Consoles are shared per stream: progress bars and the lines printed while they run then go through the
same console, which is how rich keeps a live display and printed lines from overwriting each other.
"""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console

#: width of the console without a terminal: tables are as wide as their content up to this
PLAIN_WIDTH = 1000
#: a rule (`console.rule`) is drawn at most this wide without a terminal
PLAIN_RULE_WIDTH = 100

_shared: dict[tuple[bool, int, bool, int], Console] = {}


class _Console(Console):
    """A Console whose rules stay short when it is not a terminal (a 1000-column rule helps no log)."""

    def rule(
        self, title: Any = "", *, characters: str = "─", style: Any = "rule.line", align: Any = "center"
    ) -> None:
        if self.is_terminal:
            super().rule(title, characters=characters, style=style, align=align)
            return
        from rich.rule import Rule

        self.print(Rule(title, characters=characters, style=style, align=align), width=PLAIN_RULE_WIDTH)


def console(*, stderr: bool = False, min_width: int = 0) -> Console:
    """The console for stdout (or stderr): rich's own in a terminal, `PLAIN_WIDTH` columns of plain text
    otherwise. `min_width`: a terminal narrower than this is drawn at this width instead (a table whose
    columns must not be abbreviated). Rich's FORCE_COLOR / TTY_COMPATIBLE settings decide as usual."""
    stream = sys.stderr if stderr else sys.stdout
    terminal = Console(stderr=stderr).is_terminal
    key = (stderr, id(stream), terminal, min_width)
    found = _shared.get(key)
    if found is not None:
        return found
    if terminal:
        made: Console = _Console(stderr=stderr)
        if made.width < min_width:
            made = _Console(stderr=stderr, width=min_width)
    else:
        made = _Console(
            stderr=stderr, width=PLAIN_WIDTH, color_system=None, soft_wrap=True, highlight=False, emoji=False
        )
    _shared[key] = made
    return made


class SharedConsole:
    """`console(stderr=...)` looked up at every use, for modules that keep a console at module level: the
    stream (and whether it is a terminal) is the one current when something is printed, not at import."""

    def __init__(self, *, stderr: bool = False, min_width: int = 0) -> None:
        self._stderr, self._min_width = stderr, min_width

    def __getattr__(self, name: str) -> Any:
        return getattr(console(stderr=self._stderr, min_width=self._min_width), name)
