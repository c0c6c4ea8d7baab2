"""Arrow arrays of the flat-file path built from buffers, without waking pyarrow's pandas check.

pyarrow converts Python and numpy values (`pa.array`, `pa.scalar`, a compute call given a plain number) by
first asking whether they are pandas objects, and that check imports pandas the first time it runs: about
0.5 CPU-seconds, a third of what a whole pyarrow conversion of an options day costs. A flat-file load needs
only a handful of small arrays of its own (the lineage dictionaries, the manifest), so it builds them from
buffers here; the data itself comes from pyarrow's CSV reader, and the row checks compare arrays with
arrays or aggregate (`min`) instead of comparing with Python numbers. `tests/test_flatfiles_ingest.py`
checks that a whole ingest never imports pandas.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

_EPOCH = dt.date(1970, 1, 1)


def _fixed(values: np.ndarray, type_: pa.DataType) -> pa.Array:
    data = np.ascontiguousarray(values)
    return pa.Array.from_buffers(type_, len(data), [None, pa.py_buffer(data)])


def int64s(values: Sequence[int]) -> pa.Array:
    return _fixed(np.array(values, dtype=np.int64), pa.int64())


def dates(values: Sequence[dt.date]) -> pa.Array:
    """date32: days since 1970-01-01."""
    return _fixed(np.array([(d - _EPOCH).days for d in values], dtype=np.int32), pa.date32())


def strings(values: Sequence[str]) -> pa.Array:
    encoded = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return pa.Array.from_buffers(
        pa.string(), len(encoded), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    )


def constant_strings(value: str, rows: int) -> pa.DictionaryArray:
    """`rows` times `value`, dictionary-encoded (int32 indices, one dictionary value)."""
    indices = _fixed(np.zeros(rows, dtype=np.int32), pa.int32())
    return pa.DictionaryArray.from_arrays(indices, strings([value]))
