"""The sandbox's flat files over a real S3 protocol endpoint: listing, reads, ETags, auth, faults, clock."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import hashlib
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from loaders.sandbox import flatfiles
from loaders.sandbox.commands import advance_command, serve_command
from loaders.sandbox.faults import Faults
from loaders.sandbox.market import MarketConfig
from loaders.sandbox.server import SandboxServer

BUCKET = "flatfiles"


def s3_client(server: SandboxServer, **overrides: Any) -> Any:
    env = server.env()
    config = overrides.pop("config", Config(retries={"total_max_attempts": 1}))
    return boto3.client(
        "s3",
        endpoint_url=env["POLYGON_S3_ENDPOINT"],
        aws_access_key_id=overrides.pop("key_id", env["POLYGON_S3_ACCESS_KEY_ID"]),
        aws_secret_access_key=overrides.pop("secret", env["POLYGON_S3_SECRET_ACCESS_KEY"]),
        region_name="us-east-1",
        config=config,
    )


@pytest.fixture
def s3(sandbox: SandboxServer) -> Any:
    return s3_client(sandbox)


def served_day(sandbox: SandboxServer, back: int = 3) -> dt.date:
    return sandbox.market.served_sessions()[-back]


def error_code(exc: ClientError) -> tuple[int, str]:
    return exc.response["ResponseMetadata"]["HTTPStatusCode"], exc.response["Error"]["Code"]


# --- listing and reading ----------------------------------------------------------------------------------


def test_listing_a_month_shows_one_file_per_served_session(
    sandbox: SandboxServer, s3: Any, faults: Faults
) -> None:
    market = sandbox.market
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix="us_stocks_sip/day_aggs_v1/2025/11/")
    keys = [obj["Key"] for obj in listing["Contents"]]
    november = [d for d in market.served_sessions() if d.month == 11]
    assert keys == [flatfiles.key_for("stocks_daily", d) for d in november]
    assert "us_stocks_sip/day_aggs_v1/2025/11/2025-11-27.csv.gz" not in keys, "Thanksgiving has no file"
    assert not any(dt.date.fromisoformat(k[-17:-7]).weekday() >= 5 for k in keys), "no weekend files"
    assert all(
        obj["Size"] > 100 and re.fullmatch(r'"[0-9a-f]{32}"', obj["ETag"]) for obj in listing["Contents"]
    )
    published = [
        (obj["LastModified"].astimezone(dt.UTC).date(), obj["Key"][-17:-7]) for obj in listing["Contents"]
    ]
    assert all(when.isoformat() == day for when, day in published), "published the evening of the session"


def test_listing_pages_and_common_prefixes(s3: Any, faults: Faults) -> None:
    paginator = s3.get_paginator("list_objects_v2")
    pages = list(paginator.paginate(Bucket=BUCKET, Prefix="us_options_opra/day_aggs_v1/2025/10/", MaxKeys=5))
    keys = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
    assert len(pages) > 1 and len(keys) == len(set(keys)) == 23  # October 2025 has 23 sessions
    top = s3.list_objects_v2(Bucket=BUCKET, Delimiter="/")
    assert {p["Prefix"] for p in top["CommonPrefixes"]} == {"us_stocks_sip/", "us_options_opra/"}
    months = s3.list_objects_v2(Bucket=BUCKET, Prefix="us_stocks_sip/minute_aggs_v1/2025/", Delimiter="/")
    assert [p["Prefix"] for p in months["CommonPrefixes"]] == [
        f"us_stocks_sip/minute_aggs_v1/2025/{m}/" for m in ("10", "11", "12")
    ]


def test_get_object_serves_polygons_csv_with_nanosecond_window_start(
    sandbox: SandboxServer, s3: Any, faults: Faults
) -> None:
    day = served_day(sandbox)
    key = flatfiles.key_for("stocks_minute", day)
    obj = s3.get_object(Bucket=BUCKET, Key=key)
    body = obj["Body"].read()
    assert obj["ETag"].strip('"') == hashlib.md5(body).hexdigest() and obj["ContentLength"] == len(body)
    lines = gzip.decompress(body).decode().splitlines()
    assert lines[0] == "ticker,volume,open,close,high,low,window_start,transactions"
    ticker, volume, *_, window_start, transactions = lines[1].split(",")
    assert len(window_start) == 19 and volume.isdigit() and transactions.isdigit()
    assert dt.datetime.fromtimestamp(int(window_start) / 1e9, dt.UTC).date() == day
    assert len(lines) - 1 == sandbox.market.stock_minute_aggs(day).num_rows
    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ETag"] == obj["ETag"] and head["ContentLength"] == len(body)


def test_ranged_get_returns_the_requested_bytes(sandbox: SandboxServer, s3: Any, faults: Faults) -> None:
    key = flatfiles.key_for("options_daily", served_day(sandbox))
    full = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    part = s3.get_object(Bucket=BUCKET, Key=key, Range="bytes=10-99")
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert part["ContentRange"] == f"bytes 10-99/{len(full)}" and part["Body"].read() == full[10:100]
    tail = s3.get_object(Bucket=BUCKET, Key=key, Range="bytes=-20")["Body"].read()
    assert tail == full[-20:]


def test_an_independent_s3_client_lists_and_reads(sandbox: SandboxServer, faults: Faults) -> None:
    """Arrow's C++ S3 client (AWS SDK) signs differently from botocore; both must pass the check."""
    from pyarrow import fs

    env = sandbox.env()
    s3fs = fs.S3FileSystem(
        access_key=env["POLYGON_S3_ACCESS_KEY_ID"],
        secret_key=env["POLYGON_S3_SECRET_ACCESS_KEY"],
        endpoint_override=env["POLYGON_S3_ENDPOINT"],
        region="us-east-1",
        retry_strategy=fs.AwsStandardS3RetryStrategy(max_attempts=1),
    )
    day = served_day(sandbox)
    infos = s3fs.get_file_info(fs.FileSelector(f"{BUCKET}/us_stocks_sip/day_aggs_v1/{day:%Y/%m}/"))
    assert f"{BUCKET}/{flatfiles.key_for('stocks_daily', day)}" in {i.path for i in infos}
    with s3fs.open_input_file(f"{BUCKET}/{flatfiles.key_for('stocks_daily', day)}") as handle:
        data = handle.read()
    assert gzip.decompress(data).startswith(b"ticker,volume,open,close,high,low,window_start,transactions\n")


def test_concurrent_listings_heads_and_downloads_get_bytes_matching_their_etags(
    sandbox_config: MarketConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many files fetched at once, each asked for by a month listing, a HEAD and two GETs racing each
    other on a fresh sandbox (nothing rendered yet): every body's MD5 is the ETag of its own answer, of
    the HEAD and of the listing, and the bytes are the sandbox's rendering of that file.

    Objects are kept in temporary files, as moto keeps every object over 5 MB (full-size option and
    minute days): reads of those release the GIL, so racing requests really interleave (this is how a
    retried download of a slowly rendered file used to get a wrong ETag for good)."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", "1024")

    config = dataclasses.replace(sandbox_config, seed=sandbox_config.seed + 200, option_underlyings=6)
    with SandboxServer(config, rest_port=0, s3_port=0) as server:
        days = server.market.served_sessions()[-45:]
        keys = [flatfiles.key_for(d, day) for day in days for d in ("options_daily", "stocks_daily")]
        months = sorted({key.rsplit("/", 1)[0] + "/" for key in keys})
        local = threading.local()

        def client() -> Any:
            if not hasattr(local, "client"):
                local.client = s3_client(server, config=Config(retries={"total_max_attempts": 1}))
            return local.client

        def listing(prefix: str) -> dict[str, str]:
            pages = client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
            return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}

        def head(key: str) -> str:
            return client().head_object(Bucket=BUCKET, Key=key)["ETag"]

        def get(key: str) -> tuple[str, bytes]:
            answer = client().get_object(Bucket=BUCKET, Key=key)
            return answer["ETag"], answer["Body"].read()

        with ThreadPoolExecutor(max_workers=8) as pool:
            jobs = [("list", m, pool.submit(listing, m)) for m in months]
            for key in keys:
                jobs += [("get", key, pool.submit(get, key)), ("head", key, pool.submit(head, key))]
                jobs.append(("get", key, pool.submit(get, key)))
            results = [(kind, what, job.result()) for kind, what, job in jobs]
        listed = {k: e for kind, _, found in results if kind == "list" for k, e in found.items()}
        heads = {key: etag for kind, key, etag in results if kind == "head"}
        bad = []
        for kind, key, found in results:
            if kind != "get":
                continue
            etag, body = found
            md5 = f'"{hashlib.md5(body).hexdigest()}"'
            if not (md5 == etag == heads[key] == listed[key]):
                bad.append(key)
        assert not bad, f"{len(bad)} of {2 * len(keys)} downloads do not match their ETag: {bad[:3]}"
        dataset, day = flatfiles.parse_key(keys[0])
        assert get(keys[0])[1] == flatfiles.render_file(server.market, dataset, day)
        assert len(listed) >= len(keys)
        # the ETag is fixed when the file is stored, from the stored bytes, not hashed later by whichever
        # request comes first: no two requests ever hash one object's shared buffer at once
        store = server._s3.app.store  # type: ignore[union-attr]
        fresh = flatfiles.key_for("stocks_minute", days[-1])
        store.ensure_key(fresh)
        stored = store.backend.get_object(BUCKET, fresh)
        assert stored._etag == hashlib.md5(stored.value).hexdigest()


# --- what is not there ------------------------------------------------------------------------------------


def test_future_sessions_weekends_and_unknown_keys_are_404(
    sandbox: SandboxServer, s3: Any, faults: Faults
) -> None:
    market = sandbox.market
    future = next(d for d in market.sessions if d > market.today)
    for key in (
        flatfiles.key_for("stocks_daily", future),
        "us_stocks_sip/day_aggs_v1/2025/11/2025-11-29.csv.gz",
        "us_stocks_sip/trades_v1/2025/11/2025-11-28.csv.gz",
    ):
        with pytest.raises(ClientError) as err:
            s3.get_object(Bucket=BUCKET, Key=key)
        assert error_code(err.value) == (404, "NoSuchKey"), key
    with pytest.raises(ClientError) as err:
        s3.list_objects_v2(Bucket="not-flatfiles")
    assert error_code(err.value)[0] == 404


def test_a_missing_day_is_404_and_not_listed(sandbox: SandboxServer, s3: Any, faults: Faults) -> None:
    day = served_day(sandbox, back=5)
    key = flatfiles.key_for("stocks_daily", day)
    s3.head_object(Bucket=BUCKET, Key=key)  # materialised before the fault is switched on
    faults.missing_days.add(day)
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=BUCKET, Key=key)
    assert error_code(err.value) == (404, "NoSuchKey")
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"us_stocks_sip/day_aggs_v1/{day:%Y/%m}/")
    assert key not in {obj["Key"] for obj in listed.get("Contents", [])}
    faults.missing_days.clear()
    assert s3.get_object(Bucket=BUCKET, Key=key)["ContentLength"] > 0


def test_a_republished_file_has_new_content_and_a_new_etag(
    sandbox: SandboxServer, s3: Any, faults: Faults
) -> None:
    day = served_day(sandbox, back=4)
    key = flatfiles.key_for("stocks_daily", day)
    before = s3.get_object(Bucket=BUCKET, Key=key)
    old_body = before["Body"].read()
    faults.republished.add(("stocks_daily", day))
    after = s3.get_object(Bucket=BUCKET, Key=key)
    new_body = after["Body"].read()
    assert after["ETag"] != before["ETag"] and new_body != old_body
    assert after["LastModified"] > before["LastModified"]
    old_rows = gzip.decompress(old_body).decode().splitlines()
    new_rows = gzip.decompress(new_body).decode().splitlines()
    assert (
        len(old_rows) == len(new_rows) and sum(a != b for a, b in zip(old_rows, new_rows, strict=True)) == 1
    )
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=key)["Contents"][0]
    assert listed["ETag"] == after["ETag"] and listed["Size"] == len(new_body)
    other = flatfiles.key_for("stocks_minute", day)
    assert (
        s3.head_object(Bucket=BUCKET, Key=other)["ETag"].strip('"')
        == hashlib.md5(flatfiles.render_file(sandbox.market, "stocks_minute", day)).hexdigest()
    ), "only the republished dataset changes"


# --- credentials ------------------------------------------------------------------------------------------


def test_wrong_credentials_get_s3s_403s(sandbox: SandboxServer, faults: Faults) -> None:
    key = flatfiles.key_for("stocks_daily", served_day(sandbox))
    cases = {
        "SignatureDoesNotMatch": s3_client(sandbox, secret="not-the-secret"),
        "InvalidAccessKeyId": s3_client(sandbox, key_id="AKIAWRONGKEY"),
        "AccessDenied": s3_client(sandbox, config=Config(signature_version=UNSIGNED)),
    }
    for code, client in cases.items():
        with pytest.raises(ClientError) as err:
            client.get_object(Bucket=BUCKET, Key=key)
        assert error_code(err.value) == (403, code)
        with pytest.raises(ClientError) as err:
            client.list_objects_v2(Bucket=BUCKET)
        assert error_code(err.value) == (403, code)
    secret = sandbox.env()["POLYGON_S3_SECRET_ACCESS_KEY"]
    answer = httpx.get(f"{sandbox.env()['POLYGON_S3_ENDPOINT']}/{BUCKET}/{key}")
    assert answer.status_code == 403 and secret not in answer.text


def test_presigned_urls_work_and_tampering_is_caught(sandbox: SandboxServer, faults: Faults) -> None:
    key = flatfiles.key_for("stocks_daily", served_day(sandbox))
    for version in ("s3v4", "s3"):
        client = s3_client(sandbox, config=Config(signature_version=version))
        url = client.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=60)
        assert httpx.get(url).status_code == 200, version
        tampered = url.replace("day_aggs_v1", "minute_aggs_v1")
        assert httpx.get(tampered).status_code == 403, version


def test_the_bucket_is_read_only(s3: Any, faults: Faults) -> None:
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=BUCKET, Key="us_stocks_sip/day_aggs_v1/2025/10/2025-10-01.csv.gz", Body=b"x")
    assert error_code(err.value) == (403, "AccessDenied")


# --- fault knobs ------------------------------------------------------------------------------------------


def test_error_rate_answers_500_502_and_503_slowdown(sandbox: SandboxServer, s3: Any, faults: Faults) -> None:
    key = flatfiles.key_for("stocks_daily", served_day(sandbox))
    faults.error_rate = 1.0
    seen = set()
    for _ in range(30):
        with pytest.raises(ClientError) as err:
            s3.get_object(Bucket=BUCKET, Key=key)
        seen.add(error_code(err.value))
    assert seen == {(500, "InternalError"), (502, "BadGateway"), (503, "SlowDown")}
    faults.error_rate = 0.3
    outcomes = []
    for _ in range(40):
        try:
            s3.head_object(Bucket=BUCKET, Key=key)
            outcomes.append(200)
        except ClientError as exc:
            outcomes.append(error_code(exc)[0])
    assert 200 in outcomes and any(code >= 500 for code in outcomes)


def test_error_sequences_are_reproducible_from_the_seed(
    sandbox: SandboxServer, s3: Any, faults: Faults
) -> None:
    key = flatfiles.key_for("stocks_daily", served_day(sandbox))

    def run() -> list[int]:
        faults.rng.seed(99)
        codes = []
        for _ in range(15):
            try:
                s3.head_object(Bucket=BUCKET, Key=key)
                codes.append(200)
            except ClientError as exc:
                codes.append(error_code(exc)[0])
        return codes

    faults.error_rate = 0.5
    assert run() == run()


def test_latency_delays_every_answer(sandbox: SandboxServer, s3: Any, faults: Faults) -> None:
    key = flatfiles.key_for("stocks_daily", served_day(sandbox))
    s3.head_object(Bucket=BUCKET, Key=key)
    faults.latency = 0.4
    started = time.perf_counter()
    s3.head_object(Bucket=BUCKET, Key=key)
    assert time.perf_counter() - started >= 0.4


def test_truncation_cuts_bodies_short_or_resets_the_connection(
    sandbox: SandboxServer, s3: Any, faults: Faults
) -> None:
    key = flatfiles.key_for("stocks_minute", served_day(sandbox))
    size = s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"]
    faults.truncate_rate = 1.0
    failures = []
    for _ in range(6):
        with pytest.raises(Exception) as err:  # noqa: PT011 - botocore raises several kinds here
            s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        failures.append(type(err.value).__name__)
    assert set(failures) <= {
        "ResponseStreamingError",
        "IncompleteReadError",
        "ConnectionClosedError",
        "ReadTimeoutError",
    }
    with httpx.stream(
        "GET", s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key})
    ) as r:
        received = 0
        with pytest.raises(httpx.HTTPError):
            for chunk in r.iter_raw():
                received += len(chunk)
    assert received < size
    faults.truncate_rate = 0.0
    assert len(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()) == size


def test_rate_limit_answers_slowdown_with_retry_after(
    sandbox: SandboxServer, s3: Any, faults: Faults
) -> None:
    key = flatfiles.key_for("stocks_daily", served_day(sandbox))
    s3.head_object(Bucket=BUCKET, Key=key)
    faults.rate_limit = 2.0
    throttled = []
    for _ in range(8):
        try:
            s3.get_object(Bucket=BUCKET, Key=key)
        except ClientError as exc:
            throttled.append(exc)
    assert throttled, "a burst above the limit is refused"
    first = throttled[0].response
    assert error_code(throttled[0]) == (503, "SlowDown")
    assert int(first["ResponseMetadata"]["HTTPHeaders"]["retry-after"]) >= 1
    time.sleep(1.1)
    faults.rate_limit = None
    assert s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"] > 0


# --- clock, isolation, commands ---------------------------------------------------------------------------


def test_advancing_the_clock_makes_the_next_sessions_file_appear(
    sandbox: SandboxServer, s3: Any, faults: Faults, capsys: pytest.CaptureFixture[str]
) -> None:
    market = sandbox.market
    if market.today == market.sessions[-1]:
        pytest.skip("the shared sandbox clock is already at its end")
    following = market.sessions[market.sessions.index(market.today) + 1]
    key = flatfiles.key_for("stocks_daily", following)
    with pytest.raises(ClientError) as err:
        s3.head_object(Bucket=BUCKET, Key=key)
    assert error_code(err.value)[0] == 404
    assert advance_command(days=1, url=sandbox.rest_url) == 0
    assert capsys.readouterr().out.strip() == f"sandbox clock: {following}"
    assert market.today == following
    assert s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"] > 0
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"us_stocks_sip/day_aggs_v1/{following:%Y/%m}/")
    assert key in {obj["Key"] for obj in listed["Contents"]}


def test_two_sandboxes_in_one_process_serve_their_own_market(
    sandbox: SandboxServer, sandbox_config: MarketConfig, faults: Faults
) -> None:
    other_config = dataclasses.replace(sandbox_config, seed=sandbox_config.seed + 100, tickers=9)
    day = served_day(sandbox)
    key = flatfiles.key_for("stocks_daily", day)
    with SandboxServer(other_config, rest_port=0, s3_port=0) as other:
        mine = s3_client(sandbox).get_object(Bucket=BUCKET, Key=key)["ETag"]
        theirs = s3_client(other).get_object(Bucket=BUCKET, Key=key)["ETag"]
        assert mine != theirs
        with pytest.raises(ClientError):  # each sandbox only accepts its own credentials' signatures
            s3_client(other, secret="x").head_object(Bucket=BUCKET, Key=key)
    assert s3_client(sandbox).head_object(Bucket=BUCKET, Key=key)["ETag"] == mine


def test_server_env_points_at_both_endpoints(sandbox: SandboxServer) -> None:
    env = sandbox.env()
    assert set(env) == {
        "POLYGON_API_KEY",
        "POLYGON_API_URL",
        "POLYGON_S3_ENDPOINT",
        "POLYGON_S3_BUCKET",
        "POLYGON_S3_ACCESS_KEY_ID",
        "POLYGON_S3_SECRET_ACCESS_KEY",
    }
    assert env["POLYGON_S3_BUCKET"] == BUCKET
    assert env["POLYGON_API_URL"].startswith("http://127.0.0.1:") and env["POLYGON_S3_ENDPOINT"].startswith(
        "http://127.0.0.1:"
    )
    assert env["POLYGON_API_URL"] != env["POLYGON_S3_ENDPOINT"]


@pytest.fixture
def served_command(capsys: pytest.CaptureFixture[str]) -> Iterator[tuple[dict[str, str], str]]:
    """`serve_command` running in a thread on free ports; yields the exported variables and the output."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            serve_command(
                host="127.0.0.1",
                port=0,
                seed=3,
                tickers=10,
                start="2025-11-03",
                end="2025-11-28",
                today=None,
                option_underlyings=2,
                contracts_per_underlying=8,
                minute=False,
                api_key="my-own-key",
                rate_limit=None,
                error_rate=0.0,
                latency=0.0,
                truncate_rate=0.0,
                stop_event=stop,
            )
        except BaseException as exc:  # surfaced by the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    out = ""
    while "Ctrl-C" not in out and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.1)
        out += capsys.readouterr().out
    assert not errors and "Ctrl-C" in out, (errors, out)
    env = dict(re.findall(r"^export (\w+)=(.*)$", out, re.MULTILINE))
    yield env, out
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive()


def test_serve_command_prints_the_environment_and_serves_it(
    served_command: tuple[dict[str, str], str],
) -> None:
    env, out = served_command
    assert "my-own-key" not in out, "a key the user chose is not echoed"
    client = boto3.client(
        "s3",
        endpoint_url=env["POLYGON_S3_ENDPOINT"],
        aws_access_key_id=env["POLYGON_S3_ACCESS_KEY_ID"],
        aws_secret_access_key=env["POLYGON_S3_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    )
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=env["POLYGON_S3_BUCKET"])["Contents"]]
    assert keys and all(
        k.startswith(("us_stocks_sip/day_aggs_v1/", "us_options_opra/day_aggs_v1/")) for k in keys
    )
    assert "us_stocks_sip/day_aggs_v1/2025/11/2025-11-28.csv.gz" in keys, "clock defaults to the last session"
    answer = httpx.get(f"{env['POLYGON_API_URL']}/v3/reference/tickers", params={"apiKey": "my-own-key"})
    assert answer.status_code == 200 and answer.json()["results"]


def test_faults_validate_their_fields() -> None:
    faults = Faults.from_dict(
        {"error_rate": 0.5, "missing_days": ["2025-11-03"], "republished": [["stocks_daily", "2025-11-04"]]}
    )
    assert faults.missing_days == {dt.date(2025, 11, 3)} and faults.republished == {
        ("stocks_daily", dt.date(2025, 11, 4))
    }
    assert faults.as_dict()["missing_days"] == ["2025-11-03"]
    with pytest.raises(ValueError, match="error_rate"):
        faults.update(error_rate=2)
    with pytest.raises(ValueError, match="missing_days"):
        faults.update(missing_days=["yesterday"])
    with pytest.raises(ValueError, match="colour"):
        faults.update(colour=1)
    faults.reset()
    assert faults.as_dict() == Faults().as_dict()
