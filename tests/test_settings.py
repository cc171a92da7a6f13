from pathlib import Path

import pytest

from recharge_cli.errors import InvalidInput, redact
from recharge_cli.settings import DEFAULT_PREFIX, resolve


def test_flag_beats_env_beats_config(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('dsn = "dbname=from_config"\nredis_url = "redis://config:6379/0"\n')
    env = {"RECHARGE_HOME": str(tmp_path), "RECHARGE_DSN": "dbname=from_env"}
    assert resolve(env=env).dsn == "dbname=from_env"
    assert resolve(env=env, dsn="dbname=from_flag").dsn == "dbname=from_flag"
    assert resolve(env={"RECHARGE_HOME": str(tmp_path)}).dsn == "dbname=from_config"
    assert resolve(env={"RECHARGE_HOME": str(tmp_path)}).redis_url == "redis://config:6379/0"


def test_database_url_and_libpq_variables(tmp_path: Path) -> None:
    home = {"RECHARGE_HOME": str(tmp_path)}
    assert resolve(env={**home, "DATABASE_URL": "postgresql://x/y"}).dsn == "postgresql://x/y"
    libpq = resolve(env={**home, "PGHOST": "db.example"})
    assert libpq.dsn == "" and not libpq.embedded
    assert resolve(env=home).embedded


def test_defaults(tmp_path: Path) -> None:
    settings = resolve(env={"XDG_DATA_HOME": str(tmp_path)})
    assert settings.home == tmp_path / "recharge"
    assert settings.cache_prefix == DEFAULT_PREFIX
    assert settings.cache_enabled
    assert not resolve(env={"RECHARGE_HOME": str(tmp_path), "RECHARGE_NO_CACHE": "1"}).cache_enabled


@pytest.mark.parametrize("url", ["http://x", "localhost:6379", "memcached://x"])
def test_redis_scheme_is_validated(tmp_path: Path, url: str) -> None:
    with pytest.raises(InvalidInput):
        resolve(env={"RECHARGE_HOME": str(tmp_path)}, redis_url=url)


def test_unknown_config_key_and_missing_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('colour = "blue"\n')
    with pytest.raises(InvalidInput, match="colour"):
        resolve(env={}, config=bad)
    with pytest.raises(InvalidInput, match="not found"):
        resolve(env={}, config=tmp_path / "missing.toml")


@pytest.mark.parametrize(("text", "secret"), [
    ("postgresql://app:s3cret@db:5432/x", "s3cret"),
    ("host=db password=s3cret user=app", "s3cret"),
    ("host=db password='s3 cret' user=app", "s3 cret"),
    ("rediss://default:s3cret@cache:6380/0", "s3cret"),
])
def test_redact_hides_passwords(text: str, secret: str) -> None:
    assert secret not in redact(text)
    assert "***" in redact(text)
