"""Access to the app's Runtime from request handlers."""

from __future__ import annotations

from flask import current_app

from engine.runtime import Runtime


def runtime() -> Runtime:
    rt: Runtime = current_app.extensions["hookwise"]
    return rt
