"""`cloud-agent-webhooks`: the operator's commands.

cloud-agent-webhooks migrate   schema + default wallet (the Procfile's release step)
cloud-agent-webhooks run       web + worker + beat in the foreground (what `make run` does)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from shared.settings import settings_or_exit

# Run as a PaaS runs the Procfile; `release` is done once, before the others start.
LONG_RUNNING = ("web", "worker", "beat")


def migrate() -> int:
    from shared.logs import configure_logging
    from shared.migrate import prepare_database

    settings = settings_or_exit()
    configure_logging(settings.log_level)
    prepare_database(settings)
    return 0


def run() -> int:
    """Everything in the foreground; Ctrl-C stops every process this started."""
    from honcho.manager import Manager

    from shared.embedded import EmbeddedRedis

    env = dict(os.environ)
    Path("var").mkdir(exist_ok=True)
    redis = None
    if not env.get("REDIS_URL"):
        redis = EmbeddedRedis(Path("var/redis"))
        env["REDIS_URL"] = redis.url
    os.environ.update(env)
    try:
        settings = settings_or_exit()
        from shared.migrate import prepare_database

        prepare_database(settings)  # prints the default wallet's key when it generates one
        base = f"http://localhost:{settings.port}{settings.api_prefix}"
        print(f"API:  {base}\nDocs: {base}/docs\nRedis: {env['REDIS_URL']}", flush=True)
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
