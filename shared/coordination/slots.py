"""Attempts running at once per webhook, and its rate limit, held across every worker process.

A webhook runs at most WEBHOOK_MAX_IN_FLIGHT_PER_WEBHOOK attempts at once while it is slow or
unproven (its receiver took longer than `slow_after` in the last `remember` seconds, or has
not answered quickly yet), and at most WEBHOOK_MAX_IN_FLIGHT_FAST once it answers quickly.
Each running attempt holds a slot: an entry of the webhook's sorted set, scored by when it
was taken, so that a slot whose worker died expires. A webhook's `rateLimit` is kept with the
generic cell rate algorithm: each delivery reserves the next free moment; one due later runs
then (its message waits in a worker), and one due beyond the horizon waits in the database.

When an attempt of a fast webhook ends while a task of the same process waits for a slot, the
slot stays taken and goes to that task (`keep`): a backlog flows through the cap without a
trip through the database. Otherwise, when deliveries of the webhook wait in the database for
a slot, its slot, and any other that is free, is handed to them: they are released with the
slot already theirs, so a released delivery is never parked again, and the webhook's own pace
decides how fast its waiting deliveries go.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import redis

from shared.coordination.liveness import ALIVE_SECONDS

DEAD_AFTER = ALIVE_SECONDS
KEEP_SECONDS = 3600
RECEIPT = "receipt:{delivery}:{round}:{number}"

# KEYS: run, speed, tat. ARGV: token, now, ttl, slow cap, fast cap, rate (0: none), horizon,
# reserved ('1': its rate moment was reserved already), keep.
# Returns {1, slow?} slot taken; {0, 0} at the cap; {2, wait} reserved `wait` seconds ahead;
# {3, wait} the next moment is beyond the horizon.
_ACQUIRE = """
local run, speed, tat_key = KEYS[1], KEYS[2], KEYS[3]
local token, now, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local slow_cap, fast_cap = tonumber(ARGV[4]), tonumber(ARGV[5])
local rate, horizon, reserved, keep = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8], ARGV[9]
redis.call('ZREMRANGEBYSCORE', run, '-inf', now - ttl)
local slow_until = tonumber(redis.call('HGET', speed, 'slow') or '0')
local fast_until = tonumber(redis.call('HGET', speed, 'fast') or '0')
local slow = slow_until > now or fast_until <= now
local cap = fast_cap
if slow then cap = slow_cap end
if redis.call('ZCARD', run) >= cap then
  if slow then return {0, '1'} end
  return {0, '0'}
end
if rate > 0 and reserved ~= '1' then
  local tat = tonumber(redis.call('GET', tat_key) or '0')
  if tat < now then tat = now end
  local wait = tat - now
  if wait > horizon then return {3, tostring(wait)} end
  redis.call('SET', tat_key, tostring(tat + 1 / rate), 'EX', keep)
  if wait > 0.001 then return {2, tostring(wait)} end
end
redis.call('ZADD', run, now, token)
redis.call('EXPIRE', run, keep)
if slow then return {1, '1'} end
return {1, '0'}
"""

# KEYS: run, speed, waiting, receipt ('' none). ARGV: token, now, took (-1: no request was
# made), slow_after, remember, slow cap, fast cap, keep, most to hand over, the answer's status
# (the receipt's value), how long the receipt lives, '1' to pass the slot on to a task of this
# process that waits for one (when the cap still has room for it).
# Returns {'kept'} when the slot stays taken, to be passed on; else the slots handed over to
# deliveries waiting in the database (this one's first), or none.
_FINISH = """
local run, speed, waiting_key = KEYS[1], KEYS[2], KEYS[3]
if KEYS[4] ~= '' then redis.call('SET', KEYS[4], ARGV[10], 'EX', ARGV[11]) end
local token, now, took = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local slow_after, remember = tonumber(ARGV[4]), tonumber(ARGV[5])
local slow_cap, fast_cap = tonumber(ARGV[6]), tonumber(ARGV[7])
local keep, most = ARGV[8], tonumber(ARGV[9])
if took >= 0 then
  if took > slow_after then
    redis.call('HSET', speed, 'slow', now + remember, 'fast', 0)
  else
    redis.call('HSET', speed, 'fast', now + remember)
  end
  redis.call('EXPIRE', speed, keep)
end
local slow_until = tonumber(redis.call('HGET', speed, 'slow') or '0')
local fast_until = tonumber(redis.call('HGET', speed, 'fast') or '0')
local cap = fast_cap
if slow_until > now or fast_until <= now then cap = slow_cap end
if ARGV[12] == '1' and redis.call('ZCARD', run) <= cap then
  redis.call('ZADD', run, now, token)
  return {'kept'}
end
redis.call('ZREM', run, token)
local waiting = tonumber(redis.call('GET', waiting_key) or '0')
if waiting <= 0 then return {} end
local n = math.min(waiting, cap - redis.call('ZCARD', run), most)
local handed = {}
for i = 1, n do
  local slot = token .. '.' .. i
  redis.call('ZADD', run, now, slot)
  handed[i] = slot
end
if n > 0 then redis.call('DECRBY', waiting_key, n) end
return handed
"""


# KEYS: run, speed. ARGV: token, now, ttl, slow cap, fast cap, keep. Takes every free slot;
# returns them.
_TAKE_FREE = """
local run, speed = KEYS[1], KEYS[2]
local token, now, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', run, '-inf', now - ttl)
local slow_until = tonumber(redis.call('HGET', speed, 'slow') or '0')
local fast_until = tonumber(redis.call('HGET', speed, 'fast') or '0')
local cap = tonumber(ARGV[5])
if slow_until > now or fast_until <= now then cap = tonumber(ARGV[4]) end
local taken = {}
for i = 1, cap - redis.call('ZCARD', run) do
  local slot = token .. '.' .. i
  redis.call('ZADD', run, now, slot)
  taken[i] = slot
end
redis.call('EXPIRE', run, ARGV[6])
return taken
"""

# KEYS: waiting. ARGV: count, keep. The count of deliveries waiting for a slot, at least `count`.
_EXPECT = """
if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
"""

# KEYS: pace. ARGV: now, rate, keep. A rate-limited webhook's next request may go when 1/rate
# has passed since the one before went: returns 0 (and notes that it goes now) or the seconds
# to wait before asking again.
_PACE = """
local now, gap = tonumber(ARGV[1]), 1 / tonumber(ARGV[2])
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if now >= last + gap then
  redis.call('SET', KEYS[1], tostring(now), 'EX', ARGV[3])
  return '0'
end
return tostring(last + gap - now)
"""


@dataclass(frozen=True)
class Slot:
    webhook: str
    token: str  # "<owner>/<random>": the worker process that took it (its heartbeat's id)
    slow: bool = True


@dataclass(frozen=True)
class Receipt:
    """What a receiver answered to an attempt, kept in Redis the moment it answered: should
    the worker die before recording it, the sweep records this instead of a lost attempt, and
    a delivery that arrived is not sent again."""

    delivery_id: uuid.UUID
    round: int
    number: int
    status_code: int | None

    @property
    def key(self) -> str:
        return RECEIPT.format(delivery=self.delivery_id, round=self.round, number=self.number)


@dataclass(frozen=True)
class Refusal:
    """No slot now: `wait` seconds until the rate allows one (0: the webhook is at its cap)."""

    wait: float = 0.0
    reserved: bool = False  # the moment `wait` ahead is this delivery's: come back then
    slow: bool = True  # at the cap of a webhook that is slow or not proven fast yet


def _status(receipt: Receipt | None) -> str:
    if receipt is None or receipt.status_code is None:
        return "none"
    return str(receipt.status_code)


def _keys(webhook: str) -> tuple[str, str, str, str]:
    base = f"wh:{webhook}"
    return f"{base}:run", f"{base}:speed", f"{base}:tat", f"{base}:waiting"


class Slots:
    def __init__(
        self,
        client: redis.Redis,
        slow_cap: int,
        fast_cap: int,
        ttl: float,
        slow_after: float = 1.0,
        remember: float = 30.0,
        horizon: float = 10.0,
        owner: str = "",
    ):
        self.redis = client
        self.slow_cap = slow_cap
        self.fast_cap = fast_cap
        self.ttl = ttl  # a slot older than this died with its worker
        self.slow_after = slow_after
        self.remember = remember
        self.horizon = horizon
        self.owner = owner
        self._acquire = client.register_script(_ACQUIRE)
        self._finish = client.register_script(_FINISH)
        self._pace = client.register_script(_PACE)
        self._take_free = client.register_script(_TAKE_FREE)
        self._expect = client.register_script(_EXPECT)

    def acquire(self, webhook: str, rate: int | None, reserved: bool = False) -> Slot | Refusal:
        run, speed, tat, _ = _keys(webhook)
        token = f"{self.owner}/{uuid.uuid4().hex}"
        args = [token, time.time(), self.ttl, self.slow_cap, self.fast_cap, rate or 0]
        args += [self.horizon, "1" if reserved else "0", KEEP_SECONDS]
        code, value = self._acquire(keys=[run, speed, tat], args=args)
        if code == 1:
            return Slot(webhook, token, value == b"1")
        if code == 0:
            return Refusal(slow=value == b"1")
        return Refusal(float(value), reserved=code == 2)

    def finish(
        self, slot: Slot, took: float | None, most: int, receipt: Receipt | None = None
    ) -> list[Slot]:
        """The attempt ended after `took` seconds of the receiver's time (None: no request
        was made), with `receipt` kept; the slots handed over to deliveries waiting for one,
        at most `most`."""
        return self._finished(slot, took, most, receipt, keep=False)[1]

    def keep(
        self, slot: Slot, took: float, most: int, receipt: Receipt | None = None
    ) -> tuple[bool, list[Slot]]:
        """As `finish`, but the slot stays taken when the webhook's cap still has room for it,
        for a task of this process that waits for one: (True, []) then; else (False, the
        slots handed over as `finish` hands them)."""
        return self._finished(slot, took, most, receipt, keep=True)

    def _finished(self, slot, took, most, receipt, keep: bool) -> tuple[bool, list[Slot]]:
        run, speed, _, waiting = _keys(slot.webhook)
        args = [slot.token, time.time(), -1 if took is None else took, self.slow_after]
        args += [self.remember, self.slow_cap, self.fast_cap, KEEP_SECONDS, most]
        args += [_status(receipt), int(self.ttl) + 60, "1" if keep else "0"]
        keys = [run, speed, waiting, receipt.key if receipt else ""]
        handed = self._finish(keys=keys, args=args)
        if handed == [b"kept"]:
            return True, []
        return False, [Slot(slot.webhook, token.decode()) for token in handed]

    def receipts(self, attempts) -> dict:
        """{(delivery id, round, number): status code or None} of the receipts kept for
        these (delivery id, round, number)."""
        keys = [RECEIPT.format(delivery=d, round=r, number=n) for d, r, n in attempts]
        if not keys:
            return {}
        found = {}
        for attempt, value in zip(attempts, self.redis.mget(keys), strict=True):
            if value is not None:
                found[attempt] = int(value) if value != b"none" else None
        return found

    def drop_dead(self, webhook: str, alive) -> None:
        """Free the slots of worker processes that are no longer alive (`alive(ids)` says
        which are), taken longer ago than a heartbeat lives."""
        run = _keys(webhook)[0]
        taken = self.redis.zrangebyscore(run, "-inf", time.time() - DEAD_AFTER)
        owners = {token.decode().split("/", 1)[0] for token in taken}
        living = alive(owners)
        dead = [token for token in taken if token.decode().split("/", 1)[0] not in living]
        if dead:
            self.redis.zrem(run, *dead)

    def pace(self, webhook: str, rate: int, most: float) -> None:
        """Wait until a request to a rate-limited webhook may go (at most `most` seconds). Its
        messages run at the moments they reserved, but claiming takes more or less time, and
        a thread may be scheduled late: this spaces the requests themselves, at least 1/rate
        apart from when the one before actually went."""
        deadline = time.monotonic() + most
        while True:
            wait = float(self._pace(keys=[f"wh:{webhook}:pace"], args=[time.time(), rate, 60]))
            if wait <= 0 or time.monotonic() + wait > deadline:
                return
            time.sleep(wait)

    def give_back(self, slots: list[Slot]) -> None:
        """Handed-over slots nobody took (fewer deliveries waited than counted)."""
        if not slots:
            return
        run, _, _, waiting = _keys(slots[0].webhook)
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrem(run, *[slot.token for slot in slots])
        pipe.set(waiting, 0, ex=KEEP_SECONDS)
        pipe.execute()

    def expect_waiting(self, webhook: str, count: int) -> None:
        """At least `count` deliveries of the webhook wait for a slot: its running attempts
        hand theirs over as they end. (A park counted just before a handover that found fewer
        than counted reset the count can leave deliveries waiting with none counted.)"""
        self._expect(keys=[_keys(webhook)[3]], args=[count, KEEP_SECONDS])

    def parked(self, webhook: str, count: int = 1) -> None:
        """`count` more deliveries of the webhook wait in the database for a slot."""
        waiting = _keys(webhook)[3]
        pipe = self.redis.pipeline(transaction=False)
        pipe.incrby(waiting, count)
        pipe.expire(waiting, KEEP_SECONDS)
        pipe.execute()

    def running(self, webhook: str) -> int:
        """Slots taken now (those of dead workers expire after `ttl`)."""
        run = _keys(webhook)[0]
        self.redis.zremrangebyscore(run, "-inf", time.time() - self.ttl)
        return self.redis.zcard(run)

    def free(self, webhook: str) -> list[Slot]:
        """Take every free slot of a webhook at once (to restart one whose waiting deliveries
        have no ending attempt to hand them a slot, or that just recovered)."""
        run, speed, _, _ = _keys(webhook)
        token = f"{self.owner}/{uuid.uuid4().hex}"
        args = [token, time.time(), self.ttl, self.slow_cap, self.fast_cap, KEEP_SECONDS]
        taken = self._take_free(keys=[run, speed], args=args)
        return [Slot(webhook, slot.decode()) for slot in taken]
