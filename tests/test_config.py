"""Configuration rules: the API address, where settings come from, durations."""

from __future__ import annotations

import pytest

from mobizon_batch import config
from mobizon_batch.errors import ConfigError
from tests.helpers import TEST_KEY


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("api.mobizon.kz", "https://api.mobizon.kz"),
        (" api.mobizon.uz/ ", "https://api.mobizon.uz"),
        ("https://api.mobizon.com.br", "https://api.mobizon.com.br"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost:9/", "http://localhost:9"),
    ],
)
def test_api_url_normalization(given: str, expected: str) -> None:
    assert config.normalize_api_url(given) == expected


@pytest.mark.parametrize(
    "bad", ["", "ftp://x.org", "https://", "http://h:99999", "https://a.kz/?x=1"]
)
def test_bad_api_urls_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError):
        config.normalize_api_url(bad)


def test_settings_precedence_and_repr() -> None:
    env = {"MOBIZON_API_KEY": TEST_KEY, "MOBIZON_API_URL": "api.mobizon.uz"}
    assert config.api_settings(environ=env).api_url == "https://api.mobizon.uz"
    assert config.api_settings(environ=env, url_flag="x.kz").api_url == "https://x.kz"
    no_url = {"MOBIZON_API_KEY": TEST_KEY}
    assert config.api_settings(environ=no_url, job_url="j.kz").api_url == "https://j.kz"
    assert config.api_settings(environ=no_url).api_url == config.DEFAULT_API_URL
    assert TEST_KEY not in repr(config.api_settings(environ=env))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("2h", 7200),
        ("1h30m", 5400),
        ("1d", 86400),
        (" 2H ", 7200),
        ("1d2h3m4s", 93784),
        ("0s", 0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert config.parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "2", "h", "1.5h", "30m1h", "-1m", "1 h", "2w"])
def test_bad_duration_strings(bad: str) -> None:
    with pytest.raises(ConfigError, match="not a duration"):
        config.parse_duration(bad)
