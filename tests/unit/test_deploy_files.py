"""The image holds every package the service installs; the Grafana dashboard and the Prometheus
rules load, and use only metrics the service exports."""

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
EXPORTED = {
    "webhooks_events_published_total",
    "webhooks_deliveries_total",
    "webhooks_attempt_duration_seconds_bucket",
    "webhooks_deliveries_pending",
    "webhooks_oldest_pending_delivery_age_seconds",
    "webhooks_by_status",
}


def metric_names(expressions) -> set[str]:
    return {name for expr in expressions for name in re.findall(r"\bwebhooks_[a-z_]+", expr)}


def test_rules_load_and_name_exported_metrics():
    rules = yaml.safe_load((DEPLOY / "prometheus-rules.yml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    names = {rule["alert"] for rule in alerts}
    assert {
        "WebhookDeliveriesFailing",
        "WebhookOldestPendingDeliveryOld",
        "WebhooksDisabled",
    } <= names
    assert metric_names(rule["expr"] for rule in alerts) <= EXPORTED


def test_dashboard_loads_and_names_exported_metrics():
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(dashboard["panels"]) >= 6
    assert metric_names(expressions) <= EXPORTED


def test_the_image_copies_every_package_the_service_installs():
    """`release` runs tools.cli and gunicorn.conf.py imports tools.migrate: a package left out of
    the image breaks `docker compose up`, though no test here builds the image."""
    setup = ROOT / "setup.cfg"
    found = setup.read_text().split("[options.packages.find]", 1)[1].split("[", 1)[0]
    packages = {line.strip() for line in found.splitlines() if re.fullmatch(r"\s+\w+", line)}
    copied = set(re.findall(r"^COPY (\w+) \./\1$", (ROOT / "Dockerfile").read_text(), re.M))
    assert packages == {"app", "worker", "shared", "tools"}
    assert packages <= copied
