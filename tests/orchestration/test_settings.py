"""Configuration comes only from the environment, and secrets never show when printed or logged."""

from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path

import pytest

from orchestration.dbt_process import dbt_environment
from settings import REAL_BASE_URLS, Secret, Settings, sandbox_environment, secret_values


def test_defaults_point_at_the_real_services_and_local_home(tmp_path: Path) -> None:
    settings = Settings.from_env({})
    assert settings.hubspot_base_url == REAL_BASE_URLS["hubspot"]
    assert settings.brevo_base_url == "https://api.brevo.com/v3"
    assert settings.calendly_base_url == "https://api.calendly.com"
    assert settings.stripe_base_url == "https://api.stripe.com"
    assert settings.home == Path("./.lifecycle").resolve()
    assert settings.warehouse_path == settings.home / "warehouse.duckdb"


def test_every_variable_is_read(tmp_path: Path) -> None:
    env = sandbox_environment("http://127.0.0.1:9999", tmp_path)
    settings = Settings.from_env(env)
    assert settings.home == tmp_path.resolve()
    assert settings.hubspot_base_url == "http://127.0.0.1:9999/hubspot"
    assert settings.brevo_base_url == "http://127.0.0.1:9999/brevo/v3"
    assert settings.hubspot_token.reveal() == "pat-sandbox"
    assert settings.brevo_api_key.reveal() == "xkeysib-sandbox"
    assert settings.calendly_token.reveal() == "calendly-sandbox"
    assert settings.calendly_webhook_signing_key.reveal() == "calendly-signing-sandbox"
    assert settings.stripe_api_key.reveal() == "sk_test_sandbox"
    assert settings.stripe_webhook_secret.reveal() == "whsec_sandbox"


def test_secrets_are_masked_in_repr_str_format_and_logs(tmp_path: Path, caplog) -> None:
    env = {"HUBSPOT_TOKEN": "pat-na1-very-secret", "STRIPE_API_KEY": "sk_live_very_secret"}
    settings = Settings.from_env(env)
    rendered = [repr(settings), str(settings), f"{settings.hubspot_token}", str(settings.stripe_api_key),
                repr(settings.hubspot_token), "%s" % settings.stripe_api_key]  # noqa: UP031
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("settings: %s token: %s", settings, settings.hubspot_token)
    rendered.append(caplog.text)
    for text in rendered:
        assert "very-secret" not in text and "very_secret" not in text
    assert settings.hubspot_token.reveal() == "pat-na1-very-secret"


def test_settings_without_secrets_keep_everything_but_the_credentials(tmp_path: Path) -> None:
    settings = Settings.from_env(sandbox_environment("http://127.0.0.1:9999", tmp_path))

    redacted = settings.without_secrets()

    secrets = {name for name, value in vars(settings).items() if isinstance(value, Secret)}
    assert {name: getattr(redacted, name).reveal() for name in secrets} == dict.fromkeys(secrets, "placeholder")
    assert secret_values(settings) and not set(secret_values(settings)) & set(secret_values(redacted))
    unchanged = {name: value for name, value in vars(settings).items() if not isinstance(value, Secret)}
    assert unchanged == {name: value for name, value in vars(redacted).items() if not isinstance(value, Secret)}
    assert redacted.warehouse_path == settings.warehouse_path


def test_the_brevo_settle_time_is_a_setting_in_seconds() -> None:
    assert Settings.from_env({}).brevo_settle_seconds is None
    assert Settings.from_env({"LIFECYCLE_BREVO_SETTLE_SECONDS": "90"}).brevo_settle_seconds == 90
    for bad in ("soon", "-5", "nan", "1.5"):
        with pytest.raises(ValueError, match="LIFECYCLE_BREVO_SETTLE_SECONDS must be a whole number of seconds"):
            Settings.from_env({"LIFECYCLE_BREVO_SETTLE_SECONDS": bad})


def test_the_duckdb_memory_limit_is_validated_and_reaches_dlt_and_dbt(tmp_path: Path) -> None:
    assert Settings.from_env({}).duckdb_config == {"memory_limit": "1GB"}
    settings = Settings.from_env({"LIFECYCLE_DUCKDB_MEMORY_LIMIT": "512MB", "LIFECYCLE_HOME": str(tmp_path)})
    assert settings.duckdb_config == {"memory_limit": "512MB"}
    with dbt_environment(settings, None):
        assert os.environ["LIFECYCLE_DUCKDB_MEMORY_LIMIT"] == "512MB"
    for bad in ("lots", "1 000MB", "80%", "-1GB"):
        with pytest.raises(ValueError, match="LIFECYCLE_DUCKDB_MEMORY_LIMIT must be a size such as 1GB"):
            Settings.from_env({"LIFECYCLE_DUCKDB_MEMORY_LIMIT": bad})


@pytest.mark.parametrize("use", [
    pytest.param(json.dumps, id="json.dumps"),
    pytest.param(lambda secret: json.dumps({"token": secret}), id="json.dumps nested"),
    pytest.param(pickle.dumps, id="pickle"),
    pytest.param(lambda secret: pickle.dumps(Settings.from_env({"HUBSPOT_TOKEN": "x"})), id="pickle settings"),
    pytest.param(lambda secret: secret + "suffix", id="secret + str"),
    pytest.param(lambda secret: "Bearer " + secret, id="str + secret"),
    pytest.param(lambda secret: ", ".join([secret]), id="join"),  # noqa: FLY002
    pytest.param(lambda secret: secret[:4], id="slice"),
    pytest.param(lambda secret: secret[0], id="index"),
])
def test_a_secret_refuses_to_be_serialized_concatenated_or_sliced(use) -> None:
    with pytest.raises(TypeError):
        use(Secret("pat-na1-very-secret"))


def test_a_secret_shows_only_a_mask_and_reveals_on_request() -> None:
    secret = Secret("pat-na1-very-secret")
    shown = [str(secret), repr(secret), f"{secret}", f"{secret!r}", f"{secret:>30}",
             "%s %r" % (secret, secret), "{}".format(secret),  # noqa: UP031, UP032
             json.dumps({"token": secret}, default=str)]

    assert all("very-secret" not in text and "***" in text for text in shown)
    assert secret.reveal() == "pat-na1-very-secret"
    assert secret == Secret("pat-na1-very-secret") and secret != Secret("other") and bool(secret)
    assert str(Secret("")) == "" and not Secret("")


def test_secret_values_lists_every_configured_secret_for_the_clients_to_mask(tmp_path: Path) -> None:
    env = sandbox_environment("http://127.0.0.1:9999", tmp_path)
    env["CALENDLY_TOKEN"] = ""

    assert sorted(secret_values(Settings.from_env(env))) == sorted(
        env[name] for name in ("HUBSPOT_TOKEN", "BREVO_API_KEY", "BREVO_WEBHOOK_TOKEN", "CALENDLY_WEBHOOK_SIGNING_KEY",
                               "STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET"))


def test_run_wait_and_alert_webhook_are_read_and_checked() -> None:
    assert Settings.from_env({}).run_wait_seconds == 1800
    assert Settings.from_env({"LIFECYCLE_RUN_WAIT_SECONDS": " 0 "}).run_wait_seconds == 0
    for bad in ("-1", "ten", "1.5", "²"):
        with pytest.raises(ValueError, match="LIFECYCLE_RUN_WAIT_SECONDS must be a whole number of seconds"):
            Settings.from_env({"LIFECYCLE_RUN_WAIT_SECONDS": bad})
    url = "https://hooks.slack.com/services/T000/B000/very-secret"
    settings = Settings.from_env({"LIFECYCLE_ALERT_WEBHOOK_URL": url})
    assert settings.alert_webhook_url.reveal() == url
    assert "very-secret" not in repr(settings) and "very-secret" not in f"{settings.alert_webhook_url}"
    assert not Settings.from_env({}).alert_webhook_url
