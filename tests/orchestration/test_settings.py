"""Configuration comes only from the environment, and secrets never show when printed or logged."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from orchestration.settings import REAL_BASE_URLS, Settings, sandbox_environment


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
