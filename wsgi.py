"""WSGI entry point: ``gunicorn wsgi:app`` (settings from the environment, see docs/dashboards.md)."""

from dashboard.app import create_app

app = create_app()
