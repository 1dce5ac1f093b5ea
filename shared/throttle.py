"""A cap on concurrent attempts per receiver, shared by every worker process through Redis.

A receiver that hangs holds a worker thread for the whole timeout of each attempt. Without a
cap, one such receiver soon holds every thread and every other wallet's deliveries wait behind
it. With the cap it holds at most `limit` threads; its other deliveries are put back for later
without spending an attempt. Leases expire on their own, so a killed worker leaks nothing.
"""

from __future__ import annotations

import logging
import time
import uuid
from urllib.parse import urlsplit

import redis

log = logging.getLogger(__name__)

KEY_PREFIX = "cloud-agent-webhooks:inflight:"

# KEYS[1] the receiver's lease set; ARGV: now, lease expiry, limit, token.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], math.ceil(ARGV[2] - ARGV[1]) + 1)
return 1
"""


def receiver_key(url: str) -> str:
    parts = urlsplit(url)
    return f"{KEY_PREFIX}{parts.scheme}://{parts.hostname}:{parts.port or ''}"


class ReceiverLimiter:
    def __init__(self, redis_url: str, limit: int, lease_seconds: float):
        self.redis = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        self.limit = limit
        self.lease_seconds = lease_seconds
        self._acquire = self.redis.register_script(_ACQUIRE)

    def acquire(self, url: str) -> str | None:
        """A lease token, or None when the receiver already has `limit` attempts running.

        If Redis cannot be asked, the attempt goes ahead: the cap protects latency, and must
        never stop deliveries.
        """
        token = uuid.uuid4().hex
        now = time.time()
        try:
            granted = self._acquire(
                keys=[receiver_key(url)], args=[now, now + self.lease_seconds, self.limit, token]
            )
        except redis.RedisError as exc:
            log.debug("receiver cap unavailable: %s", type(exc).__name__)
            return token
        return token if granted else None

    def release(self, url: str, token: str) -> None:
        try:
            self.redis.zrem(receiver_key(url), token)
        except redis.RedisError:
            pass  # the lease expires by itself
