# One image for the pipeline, Airflow and the dashboards (docker-compose.yml
# picks the command). Not built on our CI machines: they have no Docker engine;
# tests/test_deploy.py checks what the compose file asks of it.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt requirements-celery.txt pyproject.toml ./
RUN pip install --no-cache-dir -r requirements.txt -r requirements-celery.txt
COPY . .
RUN pip install --no-cache-dir --no-deps -e . && useradd --create-home etl && chown -R etl /app/data
USER etl
CMD ["etl", "run"]
