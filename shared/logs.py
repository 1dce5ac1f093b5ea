"""Logging set-up shared by every process. Log lines carry ids and outcomes, never secrets."""

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if any(getattr(h, "_cloud_agent_webhooks", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler._cloud_agent_webhooks = True
    root.addHandler(handler)
    root.setLevel(level)
    # urllib3 logs full URLs (query strings can carry tokens) at DEBUG; keep it quiet.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
