"""Kombu's Redis transport, with one Redis client per channel instead of one per command.

Kombu builds a new `redis.Redis` object around its connection pool for every publish and
acknowledgement; building one (its table of response callbacks) cost more CPU than sending the
command itself. A `redis.Redis` object is safe to share between threads: each command takes a
connection from the pool. The client is made again whenever kombu replaces the pool (after a
lost connection).
"""

from kombu.transport import redis


class Channel(redis.Channel):
    _shared_client = None

    def _create_client(self, asynchronous=False):
        if asynchronous:  # the consumer's polling client: kombu keeps it itself
            return super()._create_client(asynchronous=True)
        client = self._shared_client
        if client is None or client.connection_pool is not self.pool:
            client = self._shared_client = super()._create_client()
        return client


class Transport(redis.Transport):
    Channel = Channel
