"""Load: binary COPY into staging tables, set-based merges, index deferral, the audit trail."""
