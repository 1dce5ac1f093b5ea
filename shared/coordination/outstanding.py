"""The task messages that are out (sent, not finished), per wallet, in Redis.

Each message is an entry of its wallet's sorted set, named by the delivery, the queue it took
and a token of its own (the message carries the name, to remove it), scored by when it is due
to run (now, or a retry's time). A wallet's count of due entries
decides which queue its next first attempts take: up to WALLET_QUEUE_SHARE they go to the
shared first queue, beyond that to one of the bulk lanes, so that a wallet with a backlog waits
behind its own messages. A task removes its entry when it ends; an entry still there well after
it was due belongs to a message that was lost (a worker killed, Redis emptied): the sweep sends
those again.
"""

from __future__ import annotations

import secrets
import time
import uuid
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import redis

from shared.coordination import queues

WALLETS = "out:wallets"  # the wallets' sets that have entries
KEEP_SECONDS = 24 * 3600  # an idle wallet's set expires
OVERDUE_CHUNK = 500  # wallets' sets read per round trip
_NO_WALLET = "none"  # operational events about no wallet

# KEYS: one set per wallet. ARGV: now, due, keep, share, the queue to take ('' = decide), the
# first queue, '1' to push the messages too, then per wallet: its bulk lane, its number of new
# messages, and per message: its entry name without the queue ("<delivery id>|<token>"), then,
# when pushing, the message for each queue it may take (the forced one, or first then bulk).
# Returns each new entry's full name, in order.
_SEND = """
local now, due, keep, share = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local forced, first, push = ARGV[5], ARGV[6], ARGV[7] == '1'
local stride = 1
if push then
  if forced == '' then stride = 3 else stride = 2 end
end
local at, taken = 8, {}
for _, key in ipairs(KEYS) do
  local bulk = ARGV[at]
  local count = tonumber(ARGV[at + 1])
  at = at + 2
  local ahead = redis.call('ZCOUNT', key, '-inf', now)
  for j = 0, count - 1 do
    local item = at + j * stride
    local queue, message = forced, ARGV[item + 1]
    if queue == '' then
      if ahead + j < share then queue = first else queue = bulk; message = ARGV[item + 2] end
    end
    local entry = ARGV[item] .. '|' .. queue
    redis.call('ZADD', key, due, entry)
    if push then redis.call('LPUSH', queue, message) end
    taken[#taken + 1] = entry
  end
  at = at + count * stride
  redis.call('EXPIRE', key, keep)
  redis.call('SADD', 'out:wallets', key)
end
return taken
"""

# The message to push for messages[index] under its full entry name (its queue is
# `queue_of(entry)`): what the broker's consumer reads from that queue's list.
MessageFor = Callable[[int, str], str]


class Entry(NamedTuple):
    wallet_key: str
    member: str  # "<delivery id>|<token>|<queue>"
    due: float  # epoch seconds

    @property
    def delivery_id(self) -> uuid.UUID:
        return uuid.UUID(self.member.split("|", 1)[0])

    @property
    def queue(self) -> str:
        return queue_of(self.member)


def queue_of(entry: str) -> str:
    """The queue an entry's message took."""
    return entry.rsplit("|", 1)[1]


def wallet_key(wallet_id) -> str:
    return f"out:w:{wallet_id if wallet_id is not None else _NO_WALLET}"


def bulk_lane(wallet_id) -> str:
    return queues.BULK[zlib.crc32(str(wallet_id).encode()) % len(queues.BULK)]


class Outstanding:
    def __init__(self, client: redis.Redis, share: int):
        self.redis = client
        self.share = share
        self._send = client.register_script(_SEND)

    def send(
        self,
        messages: Sequence[tuple[uuid.UUID, object]],
        due: float | None = None,
        released: bool = False,
        message_for: MessageFor | None = None,
    ) -> list[str]:
        """Register messages (delivery id, wallet id) about to be sent; each one's entry, in
        order (its queue is `queue_of(entry)`). First attempts share the first queue up to each
        wallet's share; with `due` (epoch seconds: a retry, or a delivery held for its rate
        limit) they take the retry queue and are due then. `released` deliveries (waiting ones
        whose webhook can take them now) take the retry queue too: their webhook's slot is
        theirs already, and behind their wallet's backlog it would stand idle.

        With `message_for`, the messages themselves go onto their queues in the same script:
        one round trip, and an entry is never there without its message, nor the reverse. A
        first attempt's queue is decided inside the script, so each of its messages is made
        for both queues it may take."""
        forced = queues.RETRY if due is not None or released else ""
        by_wallet: dict[str, list[tuple[int, uuid.UUID, object]]] = defaultdict(list)
        for index, (delivery_id, wallet_id) in enumerate(messages):
            by_wallet[wallet_key(wallet_id)].append((index, delivery_id, wallet_id))
        per_wallet: list = []
        for items in by_wallet.values():
            lane = bulk_lane(items[0][2])
            per_wallet += [lane, len(items)]
            candidates = (forced,) if forced else (queues.FIRST, lane)
            for index, delivery_id, _ in items:
                name = f"{delivery_id}|{secrets.token_hex(4)}"
                per_wallet.append(name)
                if message_for is not None:
                    per_wallet += [message_for(index, f"{name}|{queue}") for queue in candidates]
        # Read once the messages are made (that takes milliseconds for a batch): the script
        # counts a wallet's entries due by `now`, and an earlier `now` would miss the entries
        # another process added meanwhile, letting a burst past its share of the first queue.
        now = time.time()
        argv: list = [now, due if due is not None else now, KEEP_SECONDS, self.share]
        argv += [forced, queues.FIRST, "1" if message_for is not None else "0", *per_wallet]
        taken = iter(self._send(keys=list(by_wallet), args=argv))
        names = [""] * len(messages)
        for items in by_wallet.values():
            for index, _, _ in items:
                names[index] = next(taken).decode()
        return names

    def done(self, wallet_id, entry: str) -> None:
        """The message ended (whatever became of its delivery)."""
        self.redis.zrem(wallet_key(wallet_id), entry)

    def overdue(self, before: float, limit: int = 5000) -> list[Entry]:
        """Entries due before `before`: their messages should have ended by now.

        One round trip per OVERDUE_CHUNK wallets, not per wallet: a sweep reads every wallet
        with messages outstanding, and there may be thousands."""
        found: list[Entry] = []
        keys = [raw.decode() for raw in self.redis.smembers(WALLETS)]
        for start in range(0, len(keys), OVERDUE_CHUNK):
            chunk = keys[start : start + OVERDUE_CHUNK]
            pipe = self.redis.pipeline(transaction=False)
            for key in chunk:
                pipe.zrangebyscore(key, "-inf", before, start=0, num=limit, withscores=True)
                pipe.exists(key)
            answers = pipe.execute()
            gone = []
            for key, rows, exists in zip(chunk, answers[::2], answers[1::2], strict=True):
                if not rows and not exists:
                    gone.append(key)
                found += [Entry(key, member.decode(), score) for member, score in rows]
            if gone:  # expired sets leave the index in one command, not one each
                self.redis.srem(WALLETS, *gone)
            if len(found) >= limit:
                break
        return found

    def forget(self, entries: Iterable[Entry]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for entry in entries:
            pipe.zrem(entry.wallet_key, entry.member)
        pipe.execute()
