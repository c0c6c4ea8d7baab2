"""Quarterly and annual financial statements, filed after each period ends."""

from __future__ import annotations

import datetime as dt

import numpy as np

from loaders.sandbox.market.common import (
    _SEED_FIN,
)


def _items(*rows: tuple[str, str, float, str, int]) -> dict[str, dict]:
    return {
        key: {
            "label": label,
            "value": float(round(value, 2)) if unit != "USD" else float(round(value)),
            "unit": unit,
            "order": order,
        }
        for key, label, value, unit, order in rows
    }


def _quarter_end(day: dt.date) -> dt.date:
    """The calendar quarter end on or after `day`."""
    month = ((day.month - 1) // 3 + 1) * 3
    nxt = dt.date(day.year + (month == 12), month % 12 + 1, 1)
    return nxt - dt.timedelta(days=1)


def _quarter_start(q_end: dt.date) -> dt.date:
    return dt.date(q_end.year, q_end.month - 2, 1)


class Financials:
    """Quarterly and annual financial statements, filed after each period ends. of `Market` (a mixin: the state it reads is set up by `Market.__init__`)."""

    def financials(self) -> list[dict]:
        """Quarterly statements of common stocks filed by today (filing 25-45 days after period end)."""
        today = self.today

        def build_all() -> list[dict]:
            u = self._universe
            rng = self._rng(_SEED_FIN)
            out = []
            first_q = _quarter_end(self.config.start - dt.timedelta(days=370))
            quarters = []
            q = first_q
            while q <= self.config.end:
                quarters.append(q)
                q = _quarter_end(q + dt.timedelta(days=1))
            shares = rng.lognormal(np.log(2e8), 1.0, len(u.names))
            for slot in range(len(u.names)):
                if u.types[slot] != "CS":
                    continue
                revenue = float(self._day["close"][slot, 0]) * shares[slot] * rng.uniform(0.05, 0.3)
                margin = rng.uniform(-0.05, 0.3)
                for q_end in quarters:
                    revenue *= float(np.exp(rng.normal(0.015, 0.05)))
                    filed = q_end + dt.timedelta(days=int(rng.integers(25, 46)))
                    q_start = _quarter_start(q_end)
                    cogs = revenue * rng.uniform(0.4, 0.7)
                    opex = revenue * rng.uniform(0.1, 0.25)
                    op_income = revenue - cogs - opex
                    net = revenue * (margin + rng.normal(0, 0.03))
                    assets = revenue * rng.uniform(3, 6)
                    liabilities = assets * rng.uniform(0.3, 0.7)
                    equity = assets - liabilities
                    ocf = net * rng.uniform(0.9, 1.4)
                    icf = -abs(revenue) * rng.uniform(0.02, 0.1)
                    fcf = -abs(net) * rng.uniform(0.0, 0.6)
                    eps = net / shares[slot]
                    fin = {
                        "income_statement": _items(
                            ("revenues", "Revenues", revenue, "USD", 100),
                            ("cost_of_revenue", "Cost Of Revenue", cogs, "USD", 300),
                            ("gross_profit", "Gross Profit", revenue - cogs, "USD", 800),
                            ("operating_expenses", "Operating Expenses", opex, "USD", 1000),
                            ("operating_income_loss", "Operating Income/Loss", op_income, "USD", 1100),
                            ("net_income_loss", "Net Income/Loss", net, "USD", 3200),
                            (
                                "basic_earnings_per_share",
                                "Basic Earnings Per Share",
                                round(eps, 2),
                                "USD / shares",
                                4200,
                            ),
                            (
                                "diluted_earnings_per_share",
                                "Diluted Earnings Per Share",
                                round(eps * 0.98, 2),
                                "USD / shares",
                                4300,
                            ),
                        ),
                        "balance_sheet": _items(
                            ("assets", "Assets", assets, "USD", 100),
                            ("current_assets", "Current Assets", assets * 0.35, "USD", 200),
                            ("liabilities", "Liabilities", liabilities, "USD", 600),
                            ("current_liabilities", "Current Liabilities", liabilities * 0.4, "USD", 700),
                            ("equity", "Equity", equity, "USD", 1400),
                            (
                                "equity_attributable_to_parent",
                                "Equity Attributable To Parent",
                                equity,
                                "USD",
                                1600,
                            ),
                            ("liabilities_and_equity", "Liabilities And Equity", assets, "USD", 1900),
                        ),
                        "cash_flow_statement": _items(
                            (
                                "net_cash_flow_from_operating_activities",
                                "Net Cash Flow From Operating Activities",
                                ocf,
                                "USD",
                                100,
                            ),
                            (
                                "net_cash_flow_from_investing_activities",
                                "Net Cash Flow From Investing Activities",
                                icf,
                                "USD",
                                400,
                            ),
                            (
                                "net_cash_flow_from_financing_activities",
                                "Net Cash Flow From Financing Activities",
                                fcf,
                                "USD",
                                700,
                            ),
                            ("net_cash_flow", "Net Cash Flow", ocf + icf + fcf, "USD", 1100),
                        ),
                        "comprehensive_income": _items(
                            ("comprehensive_income_loss", "Comprehensive Income/Loss", net, "USD", 100),
                            (
                                "comprehensive_income_loss_attributable_to_parent",
                                "Comprehensive Income/Loss Attributable To Parent",
                                net,
                                "USD",
                                300,
                            ),
                        ),
                    }
                    accession = f"{u.cik[slot]}-{filed:%y}-{int(rng.integers(1, 99999)):06d}"
                    fp = f"Q{(q_end.month - 1) // 3 + 1}"
                    out.append(
                        (
                            filed,
                            slot,
                            {
                                "start_date": q_start.isoformat(),
                                "end_date": q_end.isoformat(),
                                "filing_date": filed.isoformat(),
                                "acceptance_datetime": f"{filed.isoformat()}T20:05:00Z",
                                "timeframe": "quarterly",
                                "fiscal_period": fp,
                                "fiscal_year": str(q_end.year),
                                "cik": u.cik[slot],
                                "company_name": u.company[slot],
                                "source_filing_url": f"https://api.sandbox.invalid/v1/reference/sec/filings/{accession}",
                                "source_filing_file_url": f"https://api.sandbox.invalid/v1/reference/sec/filings/{accession}/files/report.xml",
                                "financials": fin,
                            },
                        )
                    )
            out.sort(key=lambda x: (x[0], u.names[x[1]]))
            return out

        everything = self._records.get(("financials",), build_all)
        t = self._today_index
        out = []
        for filed, slot, rec in everything:
            if filed > today or self._universe.list_index[slot] > t:
                continue
            out.append({**rec, "tickers": [self._listed_name(slot, t)]})
        return out
