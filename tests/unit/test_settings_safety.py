"""Unsafe settings are named, and every command but `distribution dev` refuses them."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from app.settings import (DEVELOPMENT_DOWNLOAD_SECRET, DEVELOPMENT_JWT_SECRET, Settings,
                          unsafe_settings)

GOOD = "a-production-secret-of-at-least-32-bytes!"
OTHER = "another-production-secret-of-32-bytes-or-more"
ROOT = Path(__file__).resolve().parents[2]


def settings(**values) -> Settings:
    base = {"jwt_secret": SecretStr(GOOD), "download_secret": SecretStr(OTHER)}
    return Settings.model_construct(**{**Settings().model_dump(), **base, **values})


def test_safe_settings_have_no_problem():
    assert unsafe_settings(settings()) == []


@pytest.mark.parametrize("secret, problem", [
    (None, "DISTRIBUTION_JWT_SECRET is not set"),
    (SecretStr(""), "DISTRIBUTION_JWT_SECRET is not set"),
    (SecretStr(DEVELOPMENT_JWT_SECRET), "DISTRIBUTION_JWT_SECRET is the public development default"),
    (SecretStr("x" * 31), "DISTRIBUTION_JWT_SECRET is shorter than 32 bytes"),
])
def test_an_unset_public_or_short_jwt_secret_is_named(secret, problem):
    problems = unsafe_settings(settings(jwt_secret=secret))
    assert len(problems) == 1 and problems[0].startswith(problem)


def test_thirty_two_bytes_are_enough_and_counted_as_bytes_not_characters():
    assert unsafe_settings(settings(jwt_secret=SecretStr("x" * 32))) == []
    assert unsafe_settings(settings(jwt_secret=SecretStr("é" * 16))) == []  # 32 bytes
    assert unsafe_settings(settings(jwt_secret=SecretStr("é" * 15 + "x"))) != []


def test_a_public_key_or_jwks_url_makes_the_shared_secret_optional():
    assert unsafe_settings(settings(jwt_secret=None, jwt_jwks_url="https://idp/jwks")) == []
    assert unsafe_settings(settings(jwt_secret=None, jwt_public_key="-----BEGIN...")) == []
    # ...but a secret that is given must still be a good one
    assert unsafe_settings(settings(jwt_secret=SecretStr("short"),
                                    jwt_jwks_url="https://idp/jwks")) != []


@pytest.mark.parametrize("secret", [None, SecretStr(DEVELOPMENT_DOWNLOAD_SECRET),
                                    SecretStr("short")])
def test_download_links_need_a_key_of_their_own(secret):
    problems = unsafe_settings(settings(download_secret=secret))
    assert len(problems) == 1 and "DISTRIBUTION_DOWNLOAD_SECRET" in problems[0]


def test_the_download_key_must_differ_from_the_jwt_secret():
    problems = unsafe_settings(settings(download_secret=SecretStr(GOOD)))
    assert problems == ["DISTRIBUTION_DOWNLOAD_SECRET must differ from DISTRIBUTION_JWT_SECRET"]


def test_applied_commands_must_be_remembered_longer_than_the_topics_keep_them():
    problems = unsafe_settings(settings(processed_commands_retention_hours=24,
                                        topic_retention_hours=168))
    assert len(problems) == 1 and "DISTRIBUTION_PROCESSED_COMMANDS_RETENTION_HOURS" in problems[0]


def test_secrets_never_show_in_the_settings_repr():
    text = repr(settings()) + str(settings().model_dump())
    assert GOOD not in text and OTHER not in text


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DISTRIBUTION_")}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT,
                          env={**clean, "DATABASE_URL": "postgresql://nowhere:1/x",
                               "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", **env},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("command", [["worker"], ["migrate"], ["replay"], ["token", "--sub", "x"]])
def test_every_command_but_dev_refuses_to_start_without_secrets(command):
    result = run_cli(*command)
    assert result.returncode == 2
    assert "DISTRIBUTION_JWT_SECRET is not set" in result.stderr
    assert "DISTRIBUTION_DOWNLOAD_SECRET is not set" in result.stderr


def test_the_worker_refuses_the_development_secret_and_names_the_variable():
    result = run_cli("worker", DISTRIBUTION_JWT_SECRET=DEVELOPMENT_JWT_SECRET,
                     DISTRIBUTION_DOWNLOAD_SECRET=OTHER)
    assert result.returncode == 2
    assert "DISTRIBUTION_JWT_SECRET is the public development default" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_token_made_with_good_secrets_is_printed():
    result = run_cli("token", "--sub", "influencer-9", DISTRIBUTION_JWT_SECRET=GOOD,
                     DISTRIBUTION_DOWNLOAD_SECRET=OTHER)
    assert result.returncode == 0 and result.stdout.count(".") == 2


def test_contradictory_kafka_security_settings_stop_the_worker_naming_the_variable():
    result = run_cli("worker", DISTRIBUTION_JWT_SECRET=GOOD, DISTRIBUTION_DOWNLOAD_SECRET=OTHER,
                     DISTRIBUTION_KAFKA_SECURITY_PROTOCOL="SASL_SSL")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "DISTRIBUTION_KAFKA_SASL_USERNAME" in result.stderr
