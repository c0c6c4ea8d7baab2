"""A Qlib TopkDropout backtest on the gold provider dir: the check that gold is usable for research.

``python -m loaders.gold.backtest <provider dir> [--deal-price close|vwap|open] [--minute-vwap-only]``
prints a one-line summary (``--json``: the summary and every trade as JSON). The signal is 20-session
momentum (``$close / Ref($close, 20) - 1``), read from gold with Qlib's expression engine, so the run
needs nothing but the provider dir. Qlib trades at adjusted prices; ``trade_price / $factor`` is the raw
price of the flat files (tested in ``tests/test_backtest.py``).

``--minute-vwap-only`` blocks trading on every session whose ``$vwap`` is not a minute-bar VWAP
(``$vwap_minute`` is 0 there, see docs/gold.md), through Qlib's expression limits.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SIGNAL = "$close / Ref($close, 20) - 1"
#: Qlib limit expressions (buy, sell) that make a session untradable unless its $vwap is a minute VWAP
MINUTE_VWAP_ONLY = ("$vwap_minute < 1", "$vwap_minute < 1")


@dataclass
class BacktestResult:
    deal_price: str
    start: str
    end: str
    sessions: int
    topk: int
    n_drop: int
    annualized_return: float
    excess_annualized_return: float
    information_ratio: float
    max_drawdown: float
    turnover: float
    final_value: float
    trades: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"Backtest TopkDropout(topk={self.topk}, n_drop={self.n_drop}) on 20-session momentum, "
            f"deal price {self.deal_price}, {self.start}..{self.end} ({self.sessions} sessions): "
            f"annualized return {self.annualized_return:+.2%} after costs "
            f"({self.excess_annualized_return:+.2%} over the equal-weighted universe, "
            f"information ratio {self.information_ratio:.2f}), "
            f"max drawdown {self.max_drawdown:.2%}, {len(self.trades)} trades, "
            f"final value {self.final_value:,.0f}"
        )


def _init(provider: Path) -> None:
    from loaders.extras import require

    require("qlib", "the Qlib backtest")
    import qlib

    # offline: no redis, no disk caches, no worker processes
    qlib.init(provider_uri=str(provider), region="us", expression_cache=None, dataset_cache=None, kernels=1)


def _metric(orders: Any, name: str) -> dict[str, float]:
    """One order metric of a step as {instrument: value} (Qlib's own ``to_series`` fails on pandas 3)."""
    single = orders.data[name]
    return dict(zip(single.index.idx_list.tolist(), single.data.tolist(), strict=True))


def _trades(indicator: Any) -> list[dict[str, Any]]:
    """Every dealt order of the run: session, instrument, direction, amount, Qlib's (adjusted) price.

    Qlib's amounts and prices are adjusted: raw price = ``trade_price / $factor``.
    """
    rows: list[dict[str, Any]] = []
    for when, orders in indicator.order_indicator_his.items():
        if "deal_amount" not in orders.data:
            continue
        amounts = _metric(orders, "deal_amount")
        prices = _metric(orders, "trade_price")
        directions = _metric(orders, "trade_dir")
        for stock, amount in amounts.items():
            if not amount or math.isnan(amount):
                continue
            rows.append(
                {
                    "datetime": str(when.date()),
                    "instrument": stock,
                    "direction": "buy" if directions[stock] == 1 else "sell",
                    "deal_amount": float(amount),
                    "trade_price": float(prices[stock]),
                }
            )
    return rows


def run_backtest(
    provider: Path,
    *,
    deal_price: str = "close",
    start: str | None = None,
    end: str | None = None,
    topk: int = 10,
    n_drop: int = 2,
    account: float = 1e7,
    minute_vwap_only: bool = False,
) -> BacktestResult:
    """TopkDropout on every instrument of ``all``; ``start``/``end`` default to the calendar's 22nd and second-to-last sessions."""
    import pandas as pd

    _init(provider)
    from qlib.backtest import backtest
    from qlib.backtest.executor import SimulatorExecutor
    from qlib.contrib.evaluate import risk_analysis
    from qlib.contrib.strategy import TopkDropoutStrategy
    from qlib.data import D

    calendar = D.calendar(freq="day")
    if len(calendar) < 23:
        raise ValueError(f"{provider}: {len(calendar)} sessions in gold; the backtest needs at least 23")
    begin = pd.Timestamp(start) if start else calendar[21]
    # Qlib's trade calendar reads the session after each step, so the last session cannot be a step
    finish = pd.Timestamp(end) if end else calendar[-2]
    instruments = D.instruments("all")
    signal = D.features(instruments, [SIGNAL], start_time=calendar[0], end_time=finish).iloc[:, 0]
    signal = signal.dropna()
    strategy = TopkDropoutStrategy(signal=signal, topk=topk, n_drop=n_drop)
    executor = SimulatorExecutor(
        time_per_step="day", generate_portfolio_metrics=True, verbose=False, indicator_config={}
    )
    exchange = {
        "freq": "day",
        "codes": instruments,
        "deal_price": deal_price,
        "open_cost": 0.0005,
        "close_cost": 0.0015,
        "min_cost": 0,
        "trade_unit": 1,
        "limit_threshold": MINUTE_VWAP_ONLY if minute_vwap_only else None,
    }
    # benchmark: the equal-weighted universe (Qlib's default is a Chinese index gold does not hold)
    universe = D.list_instruments(instruments, start_time=begin, end_time=finish, as_list=True)
    portfolio, indicators = backtest(
        begin, finish, strategy, executor, benchmark=universe, account=account, exchange_kwargs=exchange
    )
    report, _ = portfolio["1day"]
    _, indicator = indicators["1day"]
    absolute = risk_analysis(report["return"] - report["cost"], freq="day")["risk"]
    excess = risk_analysis(report["return"] - report["bench"] - report["cost"], freq="day")["risk"]
    trades = _trades(indicator)
    if trades:  # the factor (and VWAP source) each trade's session carries, to turn prices back into raw
        names = sorted({t["instrument"] for t in trades})
        extra = D.features(names, ["$factor", "$vwap_minute"], start_time=begin, end_time=finish)
        for trade in trades:
            factor, minute = extra.loc[(trade["instrument"], pd.Timestamp(trade["datetime"]))]
            trade["factor"], trade["vwap_minute"] = float(factor), float(minute)
    value = report["account"]
    drawdown = float((value / value.cummax() - 1).min())
    return BacktestResult(
        deal_price=deal_price,
        start=str(report.index[0].date()),
        end=str(report.index[-1].date()),
        sessions=len(report),
        topk=topk,
        n_drop=n_drop,
        annualized_return=float(absolute["annualized_return"]),
        excess_annualized_return=float(excess["annualized_return"]),
        information_ratio=float(excess["information_ratio"]),
        max_drawdown=drawdown,
        turnover=float(report["turnover"].mean()),
        final_value=float(value.iloc[-1]),
        trades=trades,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loaders.gold.backtest", description=__doc__.split("\n")[0]
    )
    parser.add_argument("provider", type=Path, help="Qlib provider dir (gold), e.g. data/gold/qlib")
    parser.add_argument("--deal-price", default="close", help="close, open or vwap (Qlib field name)")
    parser.add_argument("--start", help="first session (default: the 22nd of the calendar)")
    parser.add_argument("--end", help="last session (default: the second-to-last of the calendar)")
    parser.add_argument("--topk", type=int, default=10)
    parser.add_argument("--n-drop", type=int, default=2)
    parser.add_argument("--minute-vwap-only", action="store_true", help="trade only where $vwap_minute is 1")
    parser.add_argument("--json", action="store_true", help="print the summary and every trade as JSON")
    args = parser.parse_args(argv)
    if not (args.provider / "calendars" / "day.txt").exists():
        print(f"{args.provider} is not a Qlib provider dir (no calendars/day.txt): run dbt build first")
        return 2
    result = run_backtest(
        args.provider,
        deal_price=args.deal_price,
        start=args.start,
        end=args.end,
        topk=args.topk,
        n_drop=args.n_drop,
        minute_vwap_only=args.minute_vwap_only,
    )
    print(json.dumps(asdict(result)) if args.json else result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
