"""`cloud-agent-webhooks`: the operator's commands.

cloud-agent-webhooks migrate   schema + default wallet (the Procfile's release step)
cloud-agent-webhooks run       web + worker + beat in the foreground (what `make run` does)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from shared.settings import Settings, settings_or_exit, web_settings_or_exit

# Run as a PaaS runs the Procfile; `release` is done once, before the others start.
LONG_RUNNING = ("web", "worker", "beat")


def migrate() -> int:
    from shared.logs import configure_logging
    from tools.migrate import prepare_database

    settings = settings_or_exit()
    configure_logging(settings.log_level)
    prepare_database(settings)
    return 0


def run() -> int:
    """Everything in the foreground; Ctrl-C stops every process this started."""
    from honcho.manager import Manager

    from tools.embedded_redis import EmbeddedRedis

    env = dict(os.environ)
    Path("var").mkdir(exist_ok=True)
    redis = None
    if not env.get("REDIS_URL"):
        redis = EmbeddedRedis(Path("var/redis"))
        env["REDIS_URL"] = redis.url
    os.environ.update(env)
    try:
        settings = _with_secret_key(settings_or_exit(), env)
        from tools.migrate import prepare_database

        prepare_database(settings)  # prints the default wallet's key when it generates one
        base = f"http://localhost:{settings.port}{settings.api_prefix}"
        redis_url = without_credentials(env["REDIS_URL"])
        print(f"API:  {base}\nDocs: {base}/docs\nRedis: {redis_url}", flush=True)
        manager = Manager()
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        for name, command in procfile_commands(Path("Procfile")).items():
            if name in LONG_RUNNING:
                manager.add_process(name, command, env=env)
        manager.loop()
        return manager.returncode or 0
    finally:
        if redis is not None:
            redis.stop()


def _with_secret_key(settings: Settings, env: dict) -> Settings:
    """The embedded default (SQLite) gets a SECRET_KEY kept in var/, printed when it is made;
    with a PostgreSQL DATABASE_URL, a missing one stops here with the line web would print."""
    if settings.secret_key is None and settings.database_url.startswith("sqlite"):
        from tools.secret_key import embedded_secret_key

        key, generated = embedded_secret_key(Path("var/secret_key"))
        env["SECRET_KEY"] = os.environ["SECRET_KEY"] = key
        settings = dataclasses.replace(settings, secret_key=key)
        if generated:
            # Shown once, like the default wallet's key; it stays in var/secret_key.
            print(f"SECRET_KEY generated (kept in var/secret_key, shown once): {key}", flush=True)
    return web_settings_or_exit(settings)


def without_credentials(url: str) -> str:
    """The URL with any password replaced by ***, fit to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:" if parts.username else ":"
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}***@{host}"))


def procfile_commands(path: Path) -> dict[str, str]:
    from honcho.environ import parse_procfile

    return dict(parse_procfile(path.read_text()).processes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cloud-agent-webhooks")
    parser.add_argument("command", choices=["migrate", "run"])
    args = parser.parse_args(argv)
    return {"migrate": migrate, "run": run}[args.command]()


if __name__ == "__main__":
    raise SystemExit(main())
