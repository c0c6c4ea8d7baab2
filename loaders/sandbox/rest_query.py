"""Query parameters, filters and cursor pagination shared by the sandbox REST list endpoints.

Polygon's list endpoints all behave alike: `limit` with a per-endpoint default and maximum, `sort` and
`order`, comparison filters written `field.gte=...`, and an opaque `cursor` inside `next_url`. Pagination
here is keyset-based (the cursor carries the sort key of the last row served), so a page boundary stays
put even when the sandbox clock advances and new rows appear between two requests.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

Kind = Literal["str", "date", "datetime", "number", "int", "bool"]
Record = dict[str, Any]
SortKey = tuple[tuple[int, Any], ...]

RANGE_OPS = ("gte", "gt", "lte", "lt")
# parameters that never travel inside a cursor
TRANSPORT_PARAMS = frozenset({"apiKey", "cursor"})
PAGE_MARKER = "page_marker"


class QueryError(ValueError):
    """A query parameter the server cannot use; the message names it and becomes the 400 body."""


def parse_value(name: str, raw: str, kind: Kind) -> Any:
    """Parse one query value of the given kind, naming the parameter when it is malformed."""
    try:
        if kind == "str":
            return raw
        if kind == "date":
            return dt.date.fromisoformat(raw)
        if kind == "datetime":
            return parse_timestamp(raw)
        if kind == "number":
            return float(raw)
        if kind == "int":
            return int(raw)
        if kind == "bool":
            lowered = raw.lower()
            if lowered not in ("true", "false"):
                raise ValueError(raw)
            return lowered == "true"
    except ValueError:
        pass
    expected = {
        "str": "a string",
        "date": "a date YYYY-MM-DD",
        "datetime": "a date YYYY-MM-DD or an RFC 3339 timestamp",
        "number": "a number",
        "int": "an integer",
        "bool": "true or false",
    }[kind]
    raise QueryError(f"invalid value {raw!r} for query parameter '{name}': expected {expected}")


def parse_timestamp(raw: str) -> dt.datetime:
    """A date (midnight UTC) or an RFC 3339 timestamp, as an aware UTC datetime."""
    if len(raw) == 10:
        day = dt.date.fromisoformat(raw)
        return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    value = dt.datetime.fromisoformat(raw)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def record_value(value: Any, kind: Kind) -> Any:
    """Convert a value as found in a record to the type its filter compares with."""
    if value is None:
        return None
    if kind == "date":
        return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])
    if kind == "datetime":
        return parse_timestamp(str(value))
    if kind == "number":
        return float(value)
    if kind == "int":
        return int(value)
    if kind == "bool":
        return bool(value)
    return str(value)


@dataclass(frozen=True)
class Filter:
    """One filterable field: `param=v`, and with `ranges` also `param.gt/gte/lt/lte=v` and `param.any_of=a,b`.

    `get` returns the record's value; when it returns a list (a news article's tickers), the record
    matches if any element does.
    """

    param: str
    get: Callable[[Record], Any]
    kind: Kind = "str"
    ranges: bool = True

    def predicates(self, params: Mapping[str, str]) -> list[Callable[[Any], bool]]:
        preds: list[Callable[[Any], bool]] = []
        if self.param in params:
            wanted = parse_value(self.param, params[self.param], self.kind)
            preds.append(_equals(wanted, self.kind))
        if not self.ranges:
            return preds
        for op in RANGE_OPS:
            name = f"{self.param}.{op}"
            if name in params:
                bound = parse_value(name, params[name], self.kind)
                preds.append(_compare(op, bound))
        name = f"{self.param}.any_of"
        if name in params:
            options = {parse_value(name, item, self.kind) for item in params[name].split(",") if item}
            preds.append(lambda value, options=options: value in options)
        return preds


def _equals(wanted: Any, kind: Kind) -> Callable[[Any], bool]:
    if kind == "datetime":
        # a timestamp field queried with a bare date matches that whole UTC day
        start = wanted
        end = start + dt.timedelta(days=1)
        if start.hour == start.minute == start.second == start.microsecond == 0:
            return lambda value: start <= value < end
    return lambda value: value == wanted


def _compare(op: str, bound: Any) -> Callable[[Any], bool]:
    if op == "gte":
        return lambda value: value >= bound
    if op == "gt":
        return lambda value: value > bound
    if op == "lte":
        return lambda value: value <= bound
    return lambda value: value < bound


def matches(record: Record, filters: Sequence[tuple[Filter, list[Callable[[Any], bool]]]]) -> bool:
    for flt, preds in filters:
        raw = flt.get(record)
        values = raw if isinstance(raw, list) else [raw]
        converted = [record_value(v, flt.kind) for v in values if v is not None]
        if not any(all(pred(v) for pred in preds) for v in converted):
            return False
    return True


@dataclass(frozen=True)
class ListEndpoint:
    """How one Polygon list endpoint pages, sorts and filters (defaults from the OpenAPI spec)."""

    name: str
    default_limit: int
    max_limit: int
    sorts: Mapping[str, str]  # sort parameter value -> record field
    default_sort: str
    default_order: Literal["asc", "desc"]
    tiebreak: tuple[str, ...]  # record fields that make the order total
    filters: tuple[Filter, ...] = ()
    with_count: bool = False
    dotted_sort: bool = False  # Massive v1 endpoints also take `sort=field.asc`
    fields: tuple[str, ...] | None = None  # project results to these keys (list vs detail shapes)

    def limit(self, params: Mapping[str, str]) -> int:
        if "limit" not in params:
            return self.default_limit
        value = parse_value("limit", params["limit"], "int")
        if value < 1:
            raise QueryError(
                f"invalid value {params['limit']!r} for query parameter 'limit': must be at least 1"
            )
        return min(value, self.max_limit)

    def ordering(self, params: Mapping[str, str]) -> tuple[str, bool]:
        """(record field to sort on, descending?)."""
        sort = params.get("sort", self.default_sort)
        order = params.get("order")
        if self.dotted_sort and "." in sort:
            sort, _, order = sort.rpartition(".")
        if sort not in self.sorts:
            allowed = ", ".join(sorted(self.sorts))
            raise QueryError(f"invalid value {sort!r} for query parameter 'sort': expected one of {allowed}")
        order = order or self.default_order
        if order not in ("asc", "desc"):
            raise QueryError(f"invalid value {order!r} for query parameter 'order': expected asc or desc")
        return self.sorts[sort], order == "desc"

    def compiled_filters(self, params: Mapping[str, str]) -> list[tuple[Filter, list[Callable[[Any], bool]]]]:
        compiled = []
        for flt in self.filters:
            preds = flt.predicates(params)
            if preds:
                compiled.append((flt, preds))
        return compiled

    def sort_key(self, record: Record, sort_field: str) -> SortKey:
        return (_norm(record.get(sort_field)), *(_norm(record.get(f)) for f in self.tiebreak))

    def project(self, record: Record) -> Record:
        if self.fields is None:
            return record
        return {k: v for k, v in record.items() if k in self.fields}


def _norm(value: Any) -> tuple[int, Any]:
    """A JSON-safe, totally ordered stand-in for a field value; missing values sort last."""
    if value is None:
        return (1, "")
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, int | float):
        return (0, float(value))
    if isinstance(value, list | dict):
        return (0, json.dumps(value, sort_keys=True))
    return (0, str(value))


def _key_from_json(raw: Any) -> SortKey:
    return tuple((int(flag), value) for flag, value in raw)


# --- cursors ---------------------------------------------------------------------------------------


def encode_cursor(params: Mapping[str, str]) -> str:
    """Opaque cursor: URL-safe base64 of the query string, like Polygon's."""
    query = urlencode(sorted(params.items()))
    return base64.urlsafe_b64encode(query.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        query = base64.urlsafe_b64decode(padded.encode()).decode()
        return dict(parse_qsl(query, keep_blank_values=True, strict_parsing=True))
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise QueryError(
            "invalid value for query parameter 'cursor': not a cursor this server issued"
        ) from exc


def effective_params(query: Mapping[str, str]) -> dict[str, str]:
    """The parameters a request really asks for: the cursor's, if it has one, else its own."""
    if "cursor" in query:
        return decode_cursor(query["cursor"])
    return {k: v for k, v in query.items() if k not in TRANSPORT_PARAMS}


@dataclass
class Page:
    results: list[Record]
    next_params: dict[str, str] | None  # parameters of the next page, or None on the last one


def paginate(
    endpoint: ListEndpoint, ordered: Sequence[tuple[SortKey, Record]], params: Mapping[str, str]
) -> Page:
    """Cut the page after the cursor's marker from rows already filtered and sorted for `params`."""
    limit = endpoint.limit(params)
    start = 0
    if PAGE_MARKER in params:
        try:
            marker = _key_from_json(json.loads(params[PAGE_MARKER]))
        except (ValueError, TypeError) as exc:
            raise QueryError(
                "invalid value for query parameter 'cursor': not a cursor this server issued"
            ) from exc
        _, descending = endpoint.ordering(params)
        start = _first_after(ordered, marker, descending)
    rows = ordered[start : start + limit]
    results = [endpoint.project(record) for _, record in rows]
    next_params = None
    if start + limit < len(ordered) and rows:
        next_params = {k: v for k, v in params.items() if k not in TRANSPORT_PARAMS}
        next_params[PAGE_MARKER] = json.dumps(rows[-1][0], separators=(",", ":"))
    return Page(results, next_params)


def _first_after(ordered: Sequence[tuple[SortKey, Record]], marker: SortKey, descending: bool) -> int:
    """Index of the first row strictly after `marker` in the list's order (binary search)."""
    lo, hi = 0, len(ordered)
    while lo < hi:
        mid = (lo + hi) // 2
        key = ordered[mid][0]
        after = key < marker if descending else key > marker
        if after:
            hi = mid
        else:
            lo = mid + 1
    return lo


def order_records(
    endpoint: ListEndpoint, records: Sequence[Record], params: Mapping[str, str]
) -> list[tuple[SortKey, Record]]:
    """Filter and sort rows for `params` (the expensive part, cached per query by the caller)."""
    compiled = endpoint.compiled_filters(params)
    sort_field, descending = endpoint.ordering(params)
    endpoint.limit(params)  # reject a bad limit before doing any work
    keyed = [(endpoint.sort_key(r, sort_field), r) for r in records if matches(r, compiled)]
    keyed.sort(key=lambda item: item[0], reverse=descending)
    return keyed
