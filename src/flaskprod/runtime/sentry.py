"""Sentry, only when ``SENTRY_DSN`` is set (``sentry_sdk`` is not imported otherwise)."""

from __future__ import annotations

from flask import Flask


def init_sentry(app: Flask, profile: str) -> bool:
    """Initialise Sentry for ``app``; False when no DSN is configured."""
    dsn = app.config.get("SENTRY_DSN")
    if not dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.flask import FlaskIntegration

    sentry_sdk.init(
        dsn=str(dsn),
        integrations=[FlaskIntegration()],
        environment=profile,
        release=app.config.get("SENTRY_RELEASE") or app.config.get("GIT_SHA") or None,
        traces_sample_rate=float(app.config.get("SENTRY_TRACES_SAMPLE_RATE", 0.0)),
        send_default_pii=False,
    )
    return True
