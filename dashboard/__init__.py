"""Dashboards over the warehouse's analytics views: Flask (``app.py``) and Streamlit."""
