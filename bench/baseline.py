"""The naive design the service must beat: the usual Celery webhook task, nothing recorded.

celery -A bench.baseline worker --pool=prefork

One task per delivery carrying the URL and the body; `requests.post` with a timeout; a failure is
retried with `self.retry(countdown=5, max_retries=2)`. No database, no claim, no attempt log.
It uses its own Redis database (BASELINE_REDIS_URL).
"""

from __future__ import annotations

import os

import requests
from celery import Celery

app = Celery("naive", broker=os.environ.get("BASELINE_REDIS_URL", "redis://127.0.0.1:6379/10"))
app.conf.update(task_ignore_result=True, broker_connection_retry_on_startup=True)

HEADERS = {"Content-Type": "application/json", "User-Agent": "naive-webhooks/1.0"}


@app.task(bind=True, name="naive.deliver", max_retries=2)
def deliver(self, url: str, body: str) -> None:
    try:
        response = requests.post(url, data=body.encode(), headers=HEADERS, timeout=5)
    except requests.RequestException as exc:
        raise self.retry(exc=exc, countdown=5, max_retries=2) from exc
    if not 200 <= response.status_code < 300:
        raise self.retry(countdown=5, max_retries=2)
