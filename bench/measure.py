"""Whole-process measurements shared by the benchmarks: wall, CPU and peak RSS of one command."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@dataclass
class Measured:
    step: str
    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    exit_code: int
    detail: str = ""


def _tree_rss(proc: Any) -> int:
    import psutil

    total = 0
    try:
        total = proc.memory_info().rss
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
    except psutil.Error:
        pass
    return total


def run_measured(
    step: str, argv: list[str], env: dict[str, str], log: Path, cwd: Path | None = None, quiet: bool = False
) -> Measured:
    """Run one whole process; wall from the clock, CPU from wait4's rusage (the process and the children it
    waited for), peak RSS of the process tree sampled every 50 ms."""
    import psutil

    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        started = time.perf_counter()
        popen = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd or ROOT)
        proc = psutil.Process(popen.pid)
        peak = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, _tree_rss(proc))
                stop.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(popen.pid, 0)
        wall = time.perf_counter() - started
        stop.set()
        sampler.join()
        popen.returncode = os.waitstatus_to_exitcode(status)
    # not ru_maxrss: Linux carries the parent's high-water mark into a forked child, so a benchmark
    # holding a large table would show it as every child's peak
    peak = peak or usage.ru_maxrss * 1024
    result = Measured(
        step, wall, usage.ru_utime + usage.ru_stime, peak / 2**20, popen.returncode, " ".join(argv[1:4])
    )
    if not quiet:
        print(
            f"  {step}: {wall:.1f} s wall, {result.cpu_s:.1f} s CPU, {result.peak_rss_mib:.0f} MiB, "
            f"exit {result.exit_code}",
            flush=True,
        )
    return result


class Sandbox:
    """`quantmini sandbox serve` in its own process, so its CPU is not charged to the steps."""

    def __init__(self, work: Path, args: list[str], env: dict[str, str]) -> None:
        self.log = (work / "sandbox.log").open("w")
        self.proc = subprocess.Popen(
            [str(BIN / "quantmini"), "sandbox", "serve", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            cwd=ROOT,
        )
        self.env: dict[str, str] = {}
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("export "):
                name, _, value = line[len("export ") :].strip().partition("=")
                self.env[name] = value
            if line.startswith("# Ctrl-C"):
                break
        if self.proc.poll() is not None or "POLYGON_API_URL" not in self.env:
            raise RuntimeError(f"sandbox did not start; see {work / 'sandbox.log'}")

    def advance(self, days: int) -> None:
        import httpx

        if days > 0:
            r = httpx.post(
                f"{self.env['POLYGON_API_URL']}/_sandbox/advance", params={"days": days}, timeout=600
            )
            r.raise_for_status()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
