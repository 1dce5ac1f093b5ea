"""Kombu's Redis transport, with one Redis client per channel instead of one per command, and
a task message in the form that transport keeps on a queue's list.

Kombu builds a new `redis.Redis` object around its connection pool for every publish and
acknowledgement; building one (its table of response callbacks) cost more CPU than sending the
command itself. A `redis.Redis` object is safe to share between threads: each command takes a
connection from the pool. The client is made again whenever kombu replaces the pool (after a
lost connection).
"""

import base64

from kombu.serialization import dumps as serialize
from kombu.transport import redis
from kombu.utils.json import dumps as to_json
from kombu.utils.uuid import uuid as delivery_tag


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


def queued_message(body, headers: dict, properties: dict, queue: str, serializer: str) -> str:
    """The list item that kombu's Redis transport pushes onto `queue` for a message published
    to the anonymous exchange at priority 0 (the list is then the queue's name itself), and that
    a worker's kombu reads back: the body serialized, then base64 inside a JSON envelope.

    The sender pushes it in its own Redis script, in the round trip that also registers the
    message as outstanding (`shared.coordination.outstanding`): through kombu's producer the
    same message cost a second round trip and about twice the CPU.
    """
    content_type, content_encoding, payload = serialize(body, serializer=serializer)
    if isinstance(payload, str):
        payload = payload.encode(content_encoding)
    return to_json(
        {
            "body": base64.b64encode(payload).decode("ascii"),
            "content-encoding": content_encoding,
            "content-type": content_type,
            "headers": headers,
            "properties": {
                **properties,
                "delivery_mode": 2,  # persistent, as Celery publishes tasks
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": delivery_tag(),
                "delivery_info": {"exchange": "", "routing_key": queue},
            },
        }
    )
