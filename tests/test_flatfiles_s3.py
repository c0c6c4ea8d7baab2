"""Flat-file S3 behaviour under throttling and systematic errors, against the sandbox S3 endpoint.

Throttling never loses a session and no request goes out before a `Retry-After` allows; a systematic
error (no, wrong or denied credentials, unknown bucket or host, refused connection) stops the run at its
first evidence with one message naming the setting and an exit code of its own; the user's AWS
credential chain is never used.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from loaders import runs
from loaders.calendar import sessions
from loaders.flatfiles import s3
from loaders.flatfiles.commands import EXIT_CODES, ingest_command

DAYS = sessions("2025-10-01", "2025-12-19")  # every session the shared sandbox serves


def _ingest(dataset: str, start: dt.date, end: dt.date, concurrent: int = 3) -> int:
    return ingest_command(dataset, start, end, incremental=True, max_concurrent=concurrent)


def _bronze_sessions(env: dict[str, str], dataset: str) -> set[str]:
    root = Path(env["QM_DATA_DIR"]) / "bronze" / dataset
    return {p.name.split("=", 1)[1] for p in root.glob("session_date=*") if any(p.glob("*.parquet"))}


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    """What the run printed on stderr, with the console's line wrapping undone."""
    return " ".join(capsys.readouterr().err.split())


def _last_run(env: dict[str, str], dataset: str) -> dict[str, Any]:
    run = runs.last_run(Path(env["QM_DATA_DIR"]) / "runs", dataset)
    assert run is not None
    return run


# ------------------------------------------------------------------------------------------- throttling


def test_under_throttling_every_session_loads_and_no_request_precedes_retry_after(
    sandbox: Any, sandbox_env: dict[str, str], faults: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's scenario (`--rate-limit 5 --error-rate 0.1`, 10 concurrent downloads), scaled to the
    test market: every session loads, and once an answer said `Retry-After: n`, no request of the run
    reaches the server within those n seconds (beyond requests already on the wire)."""
    app = sandbox.s3_app
    app.arrivals.clear()
    faults.update(rate_limit=8.0, error_rate=0.1)
    assert _ingest("stocks_daily", DAYS[0], DAYS[-1], concurrent=10) == 0
    faults.reset()
    assert _bronze_sessions(sandbox_env, "stocks_daily") == {d.isoformat() for d in DAYS}
    arrivals = sorted(app.arrivals)
    throttled = [(t, wait) for t, wait in arrivals if wait is not None]
    assert throttled, "the rate limit was never hit: the test proves nothing"
    in_flight = 0.25  # requests sent before the answer reached the client
    early = [
        (round(a - t, 3), wait)
        for t, wait in throttled
        for a, _ in arrivals
        if t + in_flight < a < t + wait - 0.05
    ]
    assert early == [], f"{len(early)} request(s) arrived before Retry-After allowed: {early[:5]}"
    assert _last_run(sandbox_env, "stocks_daily")["throttled"] >= len(throttled)
    assert "throttled" in _err(capsys)


def test_the_throttle_holds_every_thread_and_backs_off_while_throttling_goes_on() -> None:
    class Clock:
        now = 100.0

        def __call__(self) -> float:
            return self.now

        def sleep(self, seconds: float) -> None:
            self.now += seconds

    clock = Clock()
    throttle = s3.Throttle(clock=clock, sleep=clock.sleep, initial=1.0, maximum=8.0)
    assert throttle.observe(3.0) == 3.0  # Retry-After as given
    assert throttle.gate.acquire() == pytest.approx(103.0)  # any thread's next request waits for it
    # without Retry-After: the pause doubles while requests sent after the last pause are throttled again
    first = throttle.observe(None, sent_at=clock.now)
    clock.now += first
    second = throttle.observe(None, sent_at=clock.now)
    assert 0.5 <= first <= 1.0 and 1.0 <= second <= 2.0
    # an answer to a request sent during the pause is no new evidence: the ceiling does not grow
    in_flight = throttle.observe(None, sent_at=clock.now - 10)
    assert in_flight <= 2.0
    assert throttle.throttled == 4


def test_retry_after_is_read_from_either_header() -> None:
    assert s3.retry_after_seconds({"retry-after": "3"}) == 3.0
    assert s3.retry_after_seconds({"x-amz-retry-after": "1500"}) == 1.5
    assert s3.retry_after_seconds({"retry-after": "100000"}) == s3.ff.MAX_RETRY_AFTER_SECONDS
    assert s3.retry_after_seconds({}) is None


# ---------------------------------------------------------------------------------------- credentials


def test_aws_credentials_in_the_environment_are_never_used(
    sandbox: Any,
    sandbox_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the user's AWS key happens to be valid for this endpoint: it must still not sign a Polygon request
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", sandbox_env["POLYGON_S3_ACCESS_KEY_ID"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", sandbox_env["POLYGON_S3_SECRET_ACCESS_KEY"])
    monkeypatch.delenv("POLYGON_S3_ACCESS_KEY_ID")
    monkeypatch.delenv("POLYGON_S3_SECRET_ACCESS_KEY")
    before = sandbox.s3_app.requests
    assert _ingest("stocks_daily", DAYS[0], DAYS[2]) == s3.EXIT_CONFIG
    assert sandbox.s3_app.requests == before  # not one request
    err = _err(capsys)
    assert "POLYGON_S3_ACCESS_KEY_ID" in err and "POLYGON_S3_SECRET_ACCESS_KEY" in err
    run = _last_run(sandbox_env, "stocks_daily")
    assert (run["status"], run["stopped"], run["items"]) == ("failed", "config", [])
    with pytest.raises(s3.StopRun, match="POLYGON_S3_SECRET_ACCESS_KEY"):
        s3.make_s3_client(sandbox_env["POLYGON_S3_ENDPOINT"], "key-only", "", 2)


def test_the_client_ignores_the_users_aws_profile_and_config(
    sandbox: Any, sandbox_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "aws-config"
    config.write_text("[default]\nregion = eu-west-3\ns3 =\n  addressing_style = virtual\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")  # boto3 alone fails with ProfileNotFound
    monkeypatch.setenv("AWS_SESSION_TOKEN", "a-users-session-token")
    client = s3.make_s3_client(
        sandbox_env["POLYGON_S3_ENDPOINT"],
        sandbox_env["POLYGON_S3_ACCESS_KEY_ID"],
        sandbox_env["POLYGON_S3_SECRET_ACCESS_KEY"],
        2,
    )
    assert client.meta.config.s3 == {"addressing_style": "path"}
    assert client.meta.region_name == "us-east-1"
    credentials = client._request_signer._credentials
    assert credentials.access_key == sandbox_env["POLYGON_S3_ACCESS_KEY_ID"] and credentials.token is None
    assert s3.published_range(s3.Listings(client, "flatfiles"), "us_stocks_sip/day_aggs_v1") == (
        DAYS[0],
        sandbox.market.today,  # other tests may have advanced the shared sandbox's clock
    )


@pytest.mark.parametrize(
    ("variable", "value", "code"),
    [
        ("POLYGON_S3_SECRET_ACCESS_KEY", "wrong-secret", "SignatureDoesNotMatch"),
        ("POLYGON_S3_ACCESS_KEY_ID", "WRONGKEY", "InvalidAccessKeyId"),
    ],
)
def test_wrong_credentials_stop_at_the_first_request(
    sandbox: Any,
    sandbox_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    code: str,
) -> None:
    monkeypatch.setenv(variable, value)
    before = sandbox.s3_app.requests
    assert _ingest("stocks_daily", DAYS[0], DAYS[-1]) == s3.EXIT_DENIED
    assert sandbox.s3_app.requests - before == 1  # the first listing proves it; nothing else is asked
    err = _err(capsys)
    assert code in err and "POLYGON_S3_ACCESS_KEY_ID and POLYGON_S3_SECRET_ACCESS_KEY" in err
    assert value not in err
    run = _last_run(sandbox_env, "stocks_daily")
    assert (run["status"], run["stopped"], run["exit_code"]) == ("failed", "credentials", s3.EXIT_DENIED)
    assert runs.outstanding_failures(Path(sandbox_env["QM_DATA_DIR"]) / "runs") == []


def test_access_denied_to_the_first_files_stops_the_run(
    sandbox: Any, sandbox_env: dict[str, str], faults: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    faults.update(denied=["us_options_opra/"])  # a plan without options: listed, not readable
    before = sandbox.s3_app.requests
    assert _ingest("options_daily", DAYS[0], DAYS[-1], concurrent=2) == s3.EXIT_DENIED
    asked = sandbox.s3_app.requests - before
    # listings (the probe's four and November's), the three denials and what was in flight: not 56
    assert asked <= 5 + 3 + 2 * 2
    err = _err(capsys)
    assert "access denied (HTTP 403) to the first" in err and "POLYGON_S3_ACCESS_KEY_ID" in err
    assert "us_options_opra/day_aggs_v1/" in err
    assert _last_run(sandbox_env, "options_daily")["stopped"] == "denied"
    assert not _bronze_sessions(sandbox_env, "options_daily")


def test_a_file_denied_after_others_loaded_fails_alone(sandbox_env: dict[str, str], faults: Any) -> None:
    faults.update(denied=["us_stocks_sip/day_aggs_v1/2025/10/2025-10-08"])
    assert _ingest("stocks_daily", DAYS[0], DAYS[9], concurrent=1) == 1
    items = {i["date"]: i["status"] for i in _last_run(sandbox_env, "stocks_daily")["items"]}
    assert items.pop("2025-10-08") == "failed" and set(items.values()) == {"loaded"}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("endpoint", "code", "words"),
    [
        ("http://127.0.0.1:{port}", s3.EXIT_UNREACHABLE, "connection refused"),
        ("http://quantmini-no-such-host.invalid:9000", s3.EXIT_NO_HOST, "cannot resolve"),
        ("files.polygon.io", s3.EXIT_CONFIG, "is not an http(s) URL"),
    ],
)
def test_an_unreachable_endpoint_stops_the_run_with_one_message(
    sandbox_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    endpoint: str,
    code: int,
    words: str,
) -> None:
    url = endpoint.format(port=_closed_port())
    monkeypatch.setenv("POLYGON_S3_ENDPOINT", url)
    assert _ingest("stocks_daily", DAYS[0], DAYS[-1]) == code
    err = _err(capsys)
    assert words in err and f"POLYGON_S3_ENDPOINT={url}" in err.replace("'", "")
    assert err.count("stopped:") == 1
    run = _last_run(sandbox_env, "stocks_daily")
    assert run["status"] == "failed" and run["items"] == [] and run["exit_code"] == code
    assert code in EXIT_CODES


def test_an_unknown_bucket_names_the_setting(
    sandbox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POLYGON_S3_BUCKET", "no-such-bucket")
    assert _ingest("stocks_daily", DAYS[0], DAYS[-1]) == s3.EXIT_CONFIG
    assert "POLYGON_S3_BUCKET" in _err(capsys)


def test_an_endpoint_lost_mid_run_stops_the_downloads(
    sandbox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After some files loaded, a refused connection stops the run: what loaded stays, the rest is not
    attempted (and not recorded as failures), and the exit code says the endpoint is unreachable."""
    from botocore.exceptions import EndpointConnectionError

    calls = {"n": 0}
    lock = threading.Lock()
    original = s3.download

    def download(client: Any, bucket: str, remote: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            calls["n"] += 1
            n = calls["n"]
        if n > 3:

            def refused() -> Any:
                error = ConnectionRefusedError(111, "Connection refused")
                raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1", error=error)

            return s3.call(refused, guard=kwargs.get("guard"))
        return original(client, bucket, remote, *args, **kwargs)

    monkeypatch.setattr("loaders.flatfiles.commands.download", download)
    assert _ingest("stocks_daily", DAYS[0], DAYS[-1], concurrent=1) == s3.EXIT_UNREACHABLE
    run = _last_run(sandbox_env, "stocks_daily")
    assert [i["status"] for i in run["items"]] == ["loaded"] * 3
    assert run["not_attempted"] == len(DAYS) - 3 and run["stopped"] == "unreachable"
    assert len(_bronze_sessions(sandbox_env, "stocks_daily")) == 3
    assert calls["n"] <= 6  # the ones already queued, not one refused download per remaining session


@pytest.mark.slow
def test_the_issues_throttling_scenario_at_full_size_loses_no_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--rate-limit 5 --error-rate 0.1`, `--max-concurrent 10`, about 200 sessions (27 of 199 failed
    before downloads honoured Retry-After)."""
    from loaders.sandbox.market import MarketConfig
    from loaders.sandbox.server import SandboxServer

    config = MarketConfig(
        seed=11,
        start=dt.date(2025, 3, 3),
        end=dt.date(2025, 12, 19),
        tickers=2,
        option_underlyings=0,
        minute=False,
    )
    with SandboxServer(config, host="127.0.0.1", rest_port=0, s3_port=0) as server:
        env = {
            **server.env(),
            "QM_DATA_DIR": str(tmp_path / "data"),
            "DLT_DATA_DIR": str(tmp_path / "data" / "dlt"),
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        days = sessions(config.start, config.end)
        server.faults.update(rate_limit=5.0, error_rate=0.1)
        assert _ingest("stocks_daily", days[0], days[-1], concurrent=10) == 0
        throttled = [t for t, wait in server.s3_app.arrivals if wait is not None]
        assert throttled and len(days) >= 199
    assert _bronze_sessions(env, "stocks_daily") == {d.isoformat() for d in days}
