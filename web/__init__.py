"""People and HTTP: the Flask app (ingest, health, and later the JSON API and UI)."""

from web.app import create_app

__all__ = ["create_app"]
