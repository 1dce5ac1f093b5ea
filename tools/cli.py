"""`cloud-agent-webhooks`: the operator's commands.

cloud-agent-webhooks migrate        schema + default wallet (the Procfile's release step)
cloud-agent-webhooks web            the API under granian (the Procfile's web runs gunicorn)
cloud-agent-webhooks run            web + worker + beat in the foreground (what `make run` does)
cloud-agent-webhooks generate-key   a new SECRET_ENCRYPTION_KEY
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
# The embedded default's SECRET_ENCRYPTION_KEY, beside the database but not in it: a copy of
# the database alone opens none of its secrets.
EMBEDDED_KEY_FILE = Path("var/secret-encryption-key")


def migrate() -> int:
    from shared.logs import configure_logging
    from tools.migrate import prepare_database

    settings = settings_or_exit()
    configure_logging(settings.log_level)
    prepare_database(settings)
    return 0


def web() -> int:
    from tools.web import serve

    return serve()


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
    if not env.get("DATABASE_URL") and not env.get("SECRET_ENCRYPTION_KEY"):
        env["SECRET_ENCRYPTION_KEY"] = embedded_encryption_key(EMBEDDED_KEY_FILE)
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


def embedded_encryption_key(path: Path) -> str:
    """The key kept in `path`, or a new one stored there (readable by this user only) and
    printed once, as the default wallet's key is."""
    if path.exists():
        return path.read_text().strip()
    from shared.secret_box import generate_key

    key = generate_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(key + "\n")
    print(
        f"Secret encryption key generated and kept in {path} (shown once; keep a copy, the "
        f"stored webhook secrets cannot be read without it): {key}",
        flush=True,
    )
    return key


def generate_key() -> int:
    from shared.secret_box import generate_key as new_key

    print(new_key())
    return 0


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
    commands = {"migrate": migrate, "web": web, "run": run, "generate-key": generate_key}
    parser.add_argument("command", choices=list(commands))
    args = parser.parse_args(argv)
    return commands[args.command]()


if __name__ == "__main__":
    raise SystemExit(main())
