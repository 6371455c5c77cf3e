"""Sentry, only when ``SENTRY_DSN`` is set (``sentry_sdk`` is not imported otherwise).

Tags: ``environment`` is the profile; ``release`` is ``SENTRY_RELEASE``, else
``GIT_SHA`` (what CI usually exports), else unset. No personal data is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask


def sentry_options(config: Mapping[str, Any], profile: str) -> dict[str, Any] | None:
    """The keyword arguments for ``sentry_sdk.init``, or None without a DSN."""
    dsn = config.get("SENTRY_DSN")
    if not dsn:
        return None
    return {
        "dsn": str(dsn),
        "environment": profile,
        "release": config.get("SENTRY_RELEASE") or config.get("GIT_SHA") or None,
        "traces_sample_rate": float(config.get("SENTRY_TRACES_SAMPLE_RATE", 0.0)),
        "send_default_pii": False,
    }


def init_sentry(app: Flask, profile: str) -> bool:
    """Initialise Sentry for ``app``; False when no DSN is configured."""
    options = sentry_options(app.config, profile)
    if options is None:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.flask import FlaskIntegration

    sentry_sdk.init(integrations=[FlaskIntegration()], **options)
    return True
