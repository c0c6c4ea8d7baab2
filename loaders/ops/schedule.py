"""`quantmini schedule install|remove`: one marked block in a crontab, replaced as a whole.

Installing twice leaves one block; removing leaves every other line as it was. The entries `cd` into
the project so `.dlt/secrets.toml` is found there: no secret is ever written into the crontab.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from loaders.config import dbt_project_dir, load_settings

BEGIN = "# >>> quantmini refresh (managed by `quantmini schedule`; edit with it) >>>"
END = "# <<< quantmini refresh <<<"
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_time(value: str, option: str) -> tuple[int, int]:
    match = _TIME.match(value.strip())
    if not match:
        raise ValueError(f"{option}: expected HH:MM (24h), got {value!r}")
    return int(match.group(1)), int(match.group(2))


def strip_block(text: str) -> str:
    """`text` without the managed block (and without a dangling blank line it leaves)."""
    out: list[str] = []
    inside = False
    for line in text.splitlines():
        if line.strip() == BEGIN:
            inside = True
            continue
        if line.strip() == END and inside:
            inside = False
            continue
        if not inside:
            out.append(line)
    while out and not out[-1].strip():
        out.pop()
    return "\n".join(out) + ("\n" if out else "")


def render_block(
    *, daily_at: str, weekly_at: str, project: Path, data_dir: Path, log_file: Path, executable: Path
) -> str:
    dh, dm = parse_time(daily_at, "--daily-at")
    wh, wm = parse_time(weekly_at, "--weekly-at")
    prefix = f"cd {shlex.quote(str(project))} && QM_DATA_DIR={shlex.quote(str(data_dir))}"
    log = shlex.quote(str(log_file))
    exe = shlex.quote(str(executable))
    mkdir = f"mkdir -p {shlex.quote(str(log_file.parent))}"
    return "\n".join(
        [
            BEGIN,
            "# daily: the morning after each weekday session (Tue-Sat); weekly: Sunday (gaps, backfill, slow datasets)",
            f"{dm} {dh} * * 2-6 {mkdir} && {prefix} {exe} refresh daily >> {log} 2>&1",
            f"{wm} {wh} * * 0 {mkdir} && {prefix} {exe} refresh weekly >> {log} 2>&1",
            END,
        ]
    )


def _read_crontab(crontab_file: Path | None) -> str:
    if crontab_file is not None:
        return crontab_file.read_text() if crontab_file.exists() else ""
    binary = shutil.which("crontab")
    if binary is None:
        raise RuntimeError("the `crontab` program is not installed; use --crontab-file or install cron")
    proc = subprocess.run([binary, "-l"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        if "no crontab" in proc.stderr.lower():
            return ""
        raise RuntimeError(f"crontab -l failed: {proc.stderr.strip()}")
    return proc.stdout


def _write_crontab(text: str, crontab_file: Path | None) -> None:
    if crontab_file is not None:
        crontab_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = crontab_file.with_name(f".{crontab_file.name}.tmp")
        tmp.write_text(text)
        tmp.replace(crontab_file)
        return
    binary = shutil.which("crontab")
    if binary is None:
        raise RuntimeError("the `crontab` program is not installed; use --crontab-file or install cron")
    proc = subprocess.run([binary, "-"], input=text, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"crontab - failed: {proc.stderr.strip()}")


def _executable() -> Path:
    """The `quantmini` of the environment running now (a venv's bin, not whatever PATH finds first)."""
    beside = Path(sys.executable).parent / "quantmini"  # no resolve(): a venv's python is a symlink
    if beside.exists():
        return beside.absolute()
    found = shutil.which("quantmini")
    return Path(found).absolute() if found else beside.absolute()


def install_command(
    *,
    daily_at: str = "06:30",
    weekly_at: str = "08:00",
    log_file: Path | None = None,
    crontab_file: Path | None = None,
) -> int:
    from loaders.terminal import console as make_console

    console = make_console()
    settings = load_settings()
    try:
        block = render_block(
            daily_at=daily_at,
            weekly_at=weekly_at,
            project=dbt_project_dir(),
            data_dir=settings.data_dir,
            log_file=(log_file or settings.data_dir / "logs" / "refresh.log").resolve(),
            executable=_executable(),
        )
        current = _read_crontab(crontab_file)
        rest = strip_block(current)
        new = (rest + ("\n" if rest else "")) + block + "\n"
        if new == current:
            console.print("[green]schedule already installed; nothing changed[/green]")
            return 0
        _write_crontab(new, crontab_file)
    except (ValueError, RuntimeError, OSError) as exc:
        console.print(f"[red]schedule install: {exc}[/red]")
        return 2
    console.print(f"[green]installed into {crontab_file or 'the user crontab'}:[/green]\n{block}")
    if os.environ.get("POLYGON_API_KEY") and not (dbt_project_dir() / ".dlt" / "secrets.toml").exists():
        console.print(
            "[yellow]note: cron does not see your shell's POLYGON_* variables; put them in .dlt/secrets.toml[/yellow]"
        )
    return 0


def remove_command(*, crontab_file: Path | None = None) -> int:
    from loaders.terminal import console as make_console

    console = make_console()
    try:
        current = _read_crontab(crontab_file)
        if BEGIN not in current:
            console.print("[green]no QuantMini schedule installed; nothing changed[/green]")
            return 0
        _write_crontab(strip_block(current), crontab_file)
    except (RuntimeError, OSError) as exc:
        console.print(f"[red]schedule remove: {exc}[/red]")
        return 2
    console.print(f"[green]removed the QuantMini entries from {crontab_file or 'the user crontab'}[/green]")
    return 0
