"""The run: stages declared once, assembled into the CLI pipeline and the Airflow DAG."""
