"""Publish: the time-bucketed aggregates, the dashboards' analytics views, exports."""
