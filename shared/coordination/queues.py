"""The queues a delivery's task message can take. Workers consume all of them; Kombu's Redis
transport takes from the non-empty ones in turn."""

FIRST = "webhooks"  # first attempts of wallets without a backlog
RETRY = "webhooks.retry"  # retries, rate-limited deliveries, released ones and housekeeping
# First attempts of a wallet that already has WALLET_QUEUE_SHARE messages outstanding: one of
# these lanes, by wallet, so that a burst queues behind itself, not in front of the others.
BULK = tuple(f"webhooks.bulk.{lane}" for lane in range(4))
ALL = (FIRST, RETRY, *BULK)
