"""Filling a backlog before the workers start, in processes of their own.

python -m bench.publish service --wallet ID --count N --until T --out FILE
python -m bench.publish naive --url URL --count N --until T --out FILE
python -m bench.publish noop --count N --until T [--rate R] --out FILE

service: `shared.publishing.publish(..., dispatch=worker.dispatch.send_deliveries)` in a
loop, in a few threads (what an in-process producer calls: commit, then send the task).
naive: the baseline's `apply_async` loop; noop: the same with bench.noop's task. All stop at
--until whatever the count, so that the bench stays bounded in time; the file says how many
were published.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid

from bench.fixtures import connection_event

THREADS = 2


def service(wallet_id: uuid.UUID, count: int, until: float) -> int:
    from shared.db import Database
    from shared.publishing import publish
    from shared.settings import get_settings
    from worker.dispatch import send_deliveries

    settings = get_settings()
    db = Database(settings.database_url, pool_size=THREADS)
    published = [0] * THREADS

    def run(number: int, share: int) -> None:
        for _ in range(share):
            if time.time() > until:
                return
            publish(
                db, settings, wallet_id, "ConnectionUpdated", connection_event(),
                dispatch=send_deliveries,
            )  # fmt: skip
            published[number] += 1

    shares = [count // THREADS + (1 if n < count % THREADS else 0) for n in range(THREADS)]
    pool = [threading.Thread(target=run, args=(n, share)) for n, share in enumerate(shares)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    db.dispose()
    return sum(published)


def naive(url: str, count: int, until: float) -> int:
    from bench import baseline
    from shared.publishing import encode_envelope
    from shared.timeutil import utcnow

    wallet_id = uuid.uuid4()
    published = 0
    with baseline.app.producer_or_acquire() as producer:
        for _ in range(count):
            if time.time() > until:
                break
            event = (uuid.uuid4(), "ConnectionUpdated", utcnow(), connection_event(), wallet_id)
            baseline.deliver.apply_async(args=(url, encode_envelope(*event)), producer=producer)
            published += 1
    return published


def noop(count: int, until: float, rate: float = 0.0) -> int:
    """No-op tasks as fast as possible, or at `rate` per second (0: no pacing)."""
    from bench import noop as floor

    published = 0
    started = time.monotonic()
    with floor.app.producer_or_acquire() as producer:
        for number in range(count):
            if time.time() > until:
                break
            if rate:
                time.sleep(max(0.0, started + number / rate - time.monotonic()))
            floor.nothing.apply_async(args=(number,), producer=producer)
            published += 1
    return published


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["service", "naive", "noop"])
    parser.add_argument("--wallet", type=uuid.UUID)
    parser.add_argument("--url")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--until", type=float, required=True)
    parser.add_argument("--rate", type=float, default=0.0, help="noop: tasks/s (0: at once)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    started = time.time()
    if args.kind == "service":
        published = service(args.wallet, args.count, args.until)
    elif args.kind == "noop":
        published = noop(args.count, args.until, args.rate)
    else:
        published = naive(args.url, args.count, args.until)
    with open(args.out, "w") as out:
        json.dump({"count": published, "seconds": time.time() - started}, out)


if __name__ == "__main__":
    main()
