"""WSGI entry point: ``gunicorn wsgi:app`` (settings from the environment, see docs/dashboards.md).

A superuser login stops the server with one line saying why (DASHBOARD_ALLOW_SUPERUSER).
"""

from dashboard.app import create_app
from dashboard.warehouse import SuperuserRefused

try:
    app = create_app()
except SuperuserRefused as exc:
    raise SystemExit(f"etl-dashboard: {exc}") from None
