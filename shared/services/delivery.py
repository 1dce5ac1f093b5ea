"""One delivery task: take the webhook's shares, claim the row, send the request the attempt's
rules describe, record what happened, and pass the webhook's slot on.

Two kinds of share are taken before the row is claimed, so that a capped webhook's deliveries
never reach the receiver: this process's threads (`shared.throttle`: slow webhooks together
hold a bounded share of them, and each host a bounded number) and the webhook's slots across
every worker (`shared.coordination.slots`: its cap on attempts at once, and its rate limit). A
delivery that gets no share waits in the database, with no attempt spent; one whose rate-limit
moment is a few seconds away comes back then. A fast webhook's delivery at the cap first waits
in its thread for a slot (`shared.coordination.waiters`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from shared import attempt_rules as rules
from shared.attempt_rules import ENDED, Outcome
from shared.coordination.outstanding import Outstanding
from shared.coordination.slots import Receipt, Refusal, Slot, Slots
from shared.coordination.waiters import KEEP_SECONDS, SlotWaiters
from shared.metrics import MetricsRecorder
from shared.sender import Sender, SendResult
from shared.services.health import HealthTracker
from shared.settings import Settings
from shared.store.rows import Claim, FinishedAttempt, Outgoing
from shared.store.stores import DirectStore
from shared.throttle import Lease, WebhookLimiter
from shared.timeutil import utcnow
from shared.tracing import NoTracing

if TYPE_CHECKING:
    from shared.tracing_export import ExportedTracing

log = logging.getLogger(__name__)
RATE_CACHE_SECONDS = 5.0
# A recovered webhook's count of deliveries waiting for a slot: more than can wait, since a
# handover that finds fewer than counted resets the count (`Slots.give_back`).
UNTIL_NONE_WAIT = 1 << 30


@dataclass(frozen=True)
class Message:
    """A delivery task's message: the delivery, and what is needed before the database."""

    delivery_id: uuid.UUID
    webhook: str | None = None
    host: str | None = None  # scheme://host:port
    wallet: str | None = None
    entry: str | None = None  # its outstanding entry (`coordination.outstanding`)
    rate: int | None = None  # the webhook's rate limit (0: none; None: not known)
    slot: str | None = None  # a slot of the webhook handed to it
    reserved: bool = False  # its moment under the rate limit is reserved: this is it

    @classmethod
    def of(cls, outgoing: Outgoing) -> Message:
        """The message a released delivery's task would carry (with no outstanding entry)."""
        return cls(
            outgoing.id,
            webhook=str(outgoing.webhook_id) if outgoing.webhook_id else None,
            host=outgoing.host,
            wallet=str(outgoing.wallet_id) if outgoing.wallet_id else None,
            rate=outgoing.rate_limit,
            slot=outgoing.slot,
        )

    def outgoing(self, **changes) -> Outgoing:
        """This delivery as a message to send again."""
        webhook = uuid.UUID(self.webhook) if self.webhook else None
        wallet = uuid.UUID(self.wallet) if self.wallet else None
        sent = Outgoing(self.delivery_id, self.host or "", webhook, wallet, self.rate)
        return sent._replace(**changes)


@dataclass
class TaskResult:
    """What came of a delivery task, and what it leaves for its caller to do."""

    outcome: Outcome
    retry_in: float = 0.0  # RETRY: the seconds the task's retry waits
    to_send: list[Outgoing] = field(default_factory=list)  # deliveries released meanwhile
    come_back_in: float | None = None  # WAIT: send it again this many seconds from now
    # The next delivery of the record this attempt ended, released: the caller runs it (in
    # the same task) or sends its task.
    next_of_record: Outgoing | None = None


def record_attempt(
    store: DirectStore, settings: Settings, claim: Claim, started: datetime, result: SendResult
) -> rules.Verdict:
    """Store the attempt and move the delivery on, as the rules say; SKIPPED when the delivery
    moved on without it (cancelled, or the sweep declared this attempt lost)."""
    verdict = rules.after_attempt(settings, claim.number, result.ok, utcnow())
    finished = FinishedAttempt(
        delivery_id=claim.id,
        round=claim.round,
        number=claim.number,
        started_at=started,
        duration_ms=result.duration_ms,
        status_code=result.status_code,
        error=result.error,
        status=verdict.status,
        retry_at=verdict.retry_at,
        webhook_id=claim.webhook_id,
    )
    if store.record(finished):
        return verdict
    return rules.Verdict(Outcome.SKIPPED, verdict.status)


@dataclass
class Deliverer:
    """What a worker process needs to run delivery tasks: made once per process."""

    store: DirectStore
    sender: Sender
    limiter: WebhookLimiter
    health: HealthTracker
    slots: Slots
    outstanding: Outstanding
    metrics: MetricsRecorder | None = None
    tracing: NoTracing | ExportedTracing = field(default_factory=NoTracing)
    # Webhooks with deliveries this process parked for want of its threads, in turn order:
    # whenever an attempt ends, the next of them in turn has one waiting delivery take the
    # freed thread.
    parked: dict = field(default_factory=dict)
    _parked_lock: threading.Lock = field(default_factory=threading.Lock)
    _rates: dict = field(default_factory=dict)  # webhook -> (rate limit, read at)
    waiters: SlotWaiters = field(default_factory=SlotWaiters)  # tasks waiting for a slot

    @property
    def settings(self) -> Settings:
        return self.store.settings

    def run(self, message: Message) -> TaskResult:
        """Run the task. When it fails (the database unreachable), the message's outstanding
        entry stays, so that the sweep sends the delivery again once it is overdue."""
        done = self._run(message)
        if message.entry is not None:
            self.outstanding.done(message.wallet, message.entry)
        return done

    def _run(self, message: Message) -> TaskResult:
        if message.webhook is None or message.host is None:
            return self._attempt(message.delivery_id, None, None)  # from an older release
        given = Slot(message.webhook, message.slot) if message.slot else None
        rate = self._rate(message.webhook, message.rate)
        taken_at = time.monotonic()
        if given is not None or rate:
            # The thread share first: neither a slot handed over nor a moment under the rate
            # limit is to be spent on a delivery that then waits for threads.
            lease = self._thread_share(message, given)
            if lease is None:
                return TaskResult(Outcome.WAIT)
            slot = given or self.slots.acquire(message.webhook, rate, message.reserved)
            if isinstance(slot, Refusal):
                self.limiter.release(lease)
                return self._refused(message, slot)
        else:
            # The slot first: it says whether the webhook answers quickly (every worker's
            # view), which this process's thread shares then trust; and a task waiting for a
            # slot holds no share of its host that other webhooks there could use.
            slot = self.slots.acquire(message.webhook, 0)
            if not slot.slow:
                self.limiter.note_fast(message.webhook)
            if isinstance(slot, Refusal) and not slot.slow:
                waited = self.waiters.wait(
                    message.webhook, lambda: self._free_slot(message.webhook), self._free
                )
                slot, taken_at = waited or (slot, taken_at)
            if isinstance(slot, Refusal):
                return self._refused(message, slot)
            lease = self._thread_share(message, slot)
            if lease is None:
                return TaskResult(Outcome.WAIT)
        held = _Held(slot, rate, taken_at)
        done = TaskResult(Outcome.SKIPPED)
        try:
            done = self._attempt(message.delivery_id, lease, held)
        finally:
            self.limiter.release(lease)
            if held.handed is None:  # no request was made
                done.to_send += self._pass_on(held, None, None)
        done.to_send += self._release_one_parked()
        return done

    def _thread_share(self, message: Message, slot: Slot | None) -> Lease | None:
        """This process's thread share for the delivery, or None: then it waits in the
        database, and the slot it holds is freed, not handed on (the next waiting delivery
        would need these same threads, and would come back parked, round and round; the
        webhook's running attempts take the free slot for its waiting deliveries as they
        end)."""
        lease = self.limiter.acquire(message.webhook, message.host)
        if lease is None:
            self.store.park(message.delivery_id, "the worker's threads for slow webhooks")
            with self._parked_lock:
                self.parked.setdefault(message.webhook, None)
            if slot is not None:
                self.slots.finish(slot, None, 0)
        return lease

    def _free_slot(self, webhook: str) -> Slot | None:
        slot = self.slots.acquire(webhook, 0)
        return slot if isinstance(slot, Slot) else None

    def _free(self, slot: Slot) -> None:
        self.slots.finish(slot, None, 0)

    def _refused(self, message: Message, refusal: Refusal) -> TaskResult:
        """No slot: the webhook is at its cap, or its rate limit's next moment is later."""
        if refusal.reserved:
            return TaskResult(Outcome.WAIT, come_back_in=refusal.wait)
        if refusal.wait > 0:
            due = utcnow() + timedelta(seconds=refusal.wait)
            self.store.park(message.delivery_id, "the webhook's rate limit", due)
            return TaskResult(Outcome.WAIT)
        self.store.park(message.delivery_id, "the webhook has its share of attempts running")
        self.slots.parked(message.webhook)
        return TaskResult(Outcome.WAIT)

    def _pass_on(self, held: _Held, took: float | None, receipt: Receipt | None) -> list:
        """The receiver answered (or no request was made): the slot goes to a task of this
        process waiting for one, or it and any free one go to deliveries of the webhook waiting
        in the database (a rate-limited webhook's wait for the sweep, which paces them); the
        answer is kept as the attempt's receipt."""
        most = 0 if held.rate else self.settings.max_in_flight_fast
        webhook = held.slot.webhook
        passing = time.monotonic() - held.taken_at < KEEP_SECONDS
        if took is not None and passing and not held.rate and self.waiters.any(webhook):
            kept, held.handed = self.slots.keep(held.slot, took, most, receipt)
            if kept and not self.waiters.give(webhook, held.slot, held.taken_at):
                # It gave up meanwhile: the slot goes as `finish` would have passed it.
                held.handed = self.slots.finish(held.slot, None, most)
            return []  # handed over once the attempt is recorded (`_attempt`)
        held.handed = self.slots.finish(held.slot, took, most, receipt)
        if took is not None:
            return []  # handed over once the attempt is recorded (`_attempt`)
        return self.hand_over(uuid.UUID(held.slot.webhook), held.handed)

    def resume_after_recovery(self, webhook_id: uuid.UUID) -> list[Outgoing]:
        """A webhook that just recovered: every free slot goes to one of its waiting
        deliveries, and from then on each of its attempts that ends hands its slot to the
        next, until a handover finds none waiting. The backlog an outage left drains at the
        webhook's own pace, not a cap's worth per sweep.

        Only after a recovery, when nothing else of the webhook competes for its slots: in
        the sweep's restart of a busy webhook, every slot would travel in a message while
        its tasks wait in threads for one."""
        webhook = str(webhook_id)
        free = self.slots.free(webhook)
        released = self.hand_over(webhook_id, free)
        if free and len(released) == len(free):
            self.slots.expect_waiting(webhook, UNTIL_NONE_WAIT)
        return released

    def _to_waiters_here(self, webhook_id: uuid.UUID, handed: list[Slot]) -> list[Slot]:
        """Slots handed over to deliveries waiting in the database go first to this process's
        tasks of the webhook waiting in their threads; the rest, to be released with them.

        A slot released with a delivery travels in its message and stands idle until the
        message is taken, while these tasks would use it at once; without this, their waits
        ran out, they parked too, and more slots travelled in messages: the webhook's
        deliveries then went at half the pace. The delivery waiting in the database keeps
        its count, so that a later slot is handed to it."""
        webhook = str(webhook_id)
        given, rest = 0, []
        for slot in handed:
            if self.waiters.give(webhook, slot, time.monotonic()):
                given += 1
            else:
                rest.append(slot)
        if given:  # one round trip, however many slots went to tasks here
            self.slots.parked(webhook, given)
        return rest

    def hand_over(self, webhook_id: uuid.UUID, handed: list[Slot]) -> list[Outgoing]:
        """Release as many waiting deliveries as slots were handed over, each with its slot."""
        if not handed:
            return []
        released = self.store.release_waiting(webhook_id, len(handed))
        self.slots.give_back(handed[len(released) :])
        return [
            outgoing._replace(slot=slot.token)
            for outgoing, slot in zip(released, handed, strict=False)
        ]

    def _rate(self, webhook: str, told: int | None = None) -> int:
        """The webhook's rate limit (0: none): as its message told, or read (and kept a
        few seconds)."""
        if told is not None:
            return told
        now = time.monotonic()
        known = self._rates.get(webhook)
        if known is None or now - known[1] > RATE_CACHE_SECONDS:
            known = (self.store.rate_limit(uuid.UUID(webhook)), now)
            self._rates[webhook] = known
        return known[0]

    def _release_one_parked(self) -> list[Outgoing]:
        """A thread just freed: one delivery parked for want of threads takes it, the webhooks
        taking turns (the thread may have been the slow share's, which every slow webhook waits
        for)."""
        while True:
            with self._parked_lock:
                # Only a webhook the caps would now let through: releasing one still at its
                # cap would only send its delivery round to be parked again.
                webhook = next((key for key in self.parked if self.limiter.has_room(key)), None)
                if webhook is None:
                    return []
                del self.parked[webhook]
            slot = self._slot_for_parked(webhook)
            if slot is None:
                continue  # at its cap across the workers: it leaves the turns
            freed = self.store.release_waiting(uuid.UUID(webhook), 1)
            if freed:
                with self._parked_lock:
                    self.parked.setdefault(webhook, None)  # to the back of the line
                if isinstance(slot, Slot):
                    return [freed[0]._replace(slot=slot.token)]
                return freed
            if isinstance(slot, Slot):
                self.slots.give_back([slot])
            # Nothing of it waits (or its circuit is open): it leaves the turns.

    def _slot_for_parked(self, webhook: str) -> Slot | bool | None:
        """A slot for the parked delivery about to be released, taken before it goes: one
        released to meet its webhook's cap would only be parked again, for every attempt
        that ends in this process. None at the cap; then one more delivery counts as waiting
        for a slot, so that the next of its attempts to end hands one over. True for a
        rate-limited webhook: its delivery takes its moment when it runs."""
        if self._rate(webhook):
            return True
        slot = self.slots.acquire(webhook, 0)
        if isinstance(slot, Refusal):
            self.slots.parked(webhook)
            return None
        return slot

    def _attempt(self, delivery_id: uuid.UUID, lease: Lease | None, held: _Held | None):
        started = utcnow()
        claim = self.store.claim(delivery_id)
        if claim is None:
            return TaskResult(Outcome.SKIPPED)
        trace = self.tracing.attempt(claim)
        request = rules.request_for(claim, self.settings, started, trace.traceparent)
        if held is not None and held.rate:
            self.slots.pace(held.slot.webhook, held.rate, self.settings.webhook_timeout)
        # The caps judge a webhook by its receiver's time alone, not by how long this
        # process took to claim and record on a busy machine.
        if lease is not None:
            self.limiter.sending(lease)
        result = self.sender.send(request)
        trace.finished(result.status_code, result.error, result.duration_ms)
        took = result.duration_ms / 1000
        if lease is not None:
            self.limiter.answered(lease, took)
        if held is not None:
            receipt = Receipt(claim.id, claim.round, claim.number, result.status_code)
            self._pass_on(held, took, receipt)
        try:
            verdict = record_attempt(self.store, self.settings, claim, started, result)
            noted = self.health.after_attempt(claim.webhook_id, claim.id, result)
        except Exception:
            if held is not None:
                self.slots.give_back(held.handed)  # nobody will take them now
            raise
        released, following = noted.to_send, None
        if held is not None:
            handed = self._to_waiters_here(claim.webhook_id, held.handed)
            released += self.hand_over(claim.webhook_id, handed)
        if noted.recovered:
            released += self.resume_after_recovery(claim.webhook_id)
        if claim.record_key is not None and verdict.outcome in ENDED:
            # Its record's next delivery was waiting for this one to end: it goes now (the
            # sweep releases it too, should this process stop first).
            following = next(
                iter(self.store.release_next_of_record(claim.webhook_id, claim.record_key)), None
            )
        if self.metrics is not None:
            ended = verdict.outcome if verdict.outcome in ENDED else None
            self.metrics.attempt_finished(result.duration_ms, ended)
        if verdict.outcome == Outcome.FAILED:
            log.warning(
                "delivery failed after %d attempts: delivery=%s event=%s webhook=%s host=%s "
                "last=%s",
                claim.number,
                claim.id,
                claim.event_id,
                claim.webhook_id,
                urlsplit(claim.url).hostname,
                result.error or f"HTTP {result.status_code}",
            )
        return TaskResult(verdict.outcome, verdict.retry_in, released, next_of_record=following)


@dataclass
class _Held:
    """The webhook slot a task holds, until it is passed on."""

    slot: Slot
    rate: int
    taken_at: float  # time.monotonic() when the slot was taken (before any task passed it on)
    handed: list[Slot] | None = None  # the slots passed on; None while it is held
