# One image for every process of docker-compose.yml (web, worker, beat, migrations).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /srv/cloud-agent-webhooks

COPY setup.py setup.cfg README.md ./
COPY app ./app
COPY worker ./worker
COPY shared ./shared
COPY tools ./tools
COPY migrations ./migrations
COPY alembic.ini gunicorn.conf.py Procfile ./
# Editable, so the migrations folder beside the packages is found at run time.
RUN pip install -e . && useradd --system --home /srv/cloud-agent-webhooks webhooks
USER webhooks

EXPOSE 8080
CMD ["gunicorn", "-c", "gunicorn.conf.py", "app:create_app()"]
