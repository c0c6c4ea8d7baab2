"""Where the tests find Polygon's reference payloads: inside the repository, under tests/reference/polygon."""

from __future__ import annotations

from pathlib import Path

POLYGON_REFERENCE = Path(__file__).resolve().parent / "reference" / "polygon"
OPENAPI_SPEC = POLYGON_REFERENCE / "openapi-rest.json"
REST_MOCKS = POLYGON_REFERENCE / "rest-mocks"
FLATFILE_SAMPLES = POLYGON_REFERENCE / "flatfiles-samples"
