"""What an answer says about a receiver, how long it holds a webhook, when a circuit opens, and
when the next attempt is due: the attempt's rules, without I/O."""

from datetime import UTC, datetime, timedelta

from shared import attempt_rules as rules
from shared.attempt_rules import Outcome, Signal
from shared.settings import load_settings

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
SETTINGS = load_settings({"WEBHOOK_RETRY_COUNTDOWN": "5", "WEBHOOK_CIRCUIT_FAILURES": "5"})


def test_what_an_answer_says_about_the_receiver():
    assert rules.signal_of(204) == Signal.UP
    assert rules.signal_of(410) == Signal.GONE
    # A 4xx is this delivery's problem, except a timeout or a request to slow down.
    assert [rules.signal_of(code) for code in (400, 404, 413, 422)] == [Signal.REFUSED] * 4
    assert [rules.signal_of(code) for code in (408, 429)] == [Signal.DOWN] * 2
    assert [rules.signal_of(code) for code in (None, 301, 500, 502, 503)] == [Signal.DOWN] * 5


def test_throttling_answers_hold_the_webhook_for_their_retry_after_or_a_countdown():
    assert rules.hold_until(SETTINGS, 502, None, NOW) == NOW + timedelta(seconds=5)
    assert rules.hold_until(SETTINGS, 504, 30, NOW) == NOW + timedelta(seconds=30)
    assert rules.hold_until(SETTINGS, 429, 10**6, NOW) == NOW + timedelta(seconds=300)  # capped
    assert rules.hold_until(SETTINGS, 500, 30, NOW) is None  # not a request to slow down


def test_a_circuit_opens_only_when_nothing_succeeded_for_two_countdowns():
    assert not rules.opens_circuit(SETTINGS, 4, None, NOW)
    assert rules.opens_circuit(SETTINGS, 5, None, NOW)
    # A receiver that accepts retries answered 2xx a moment ago: the circuit stays closed.
    assert not rules.opens_circuit(SETTINGS, 9, NOW - timedelta(seconds=9), NOW)
    assert rules.opens_circuit(SETTINGS, 9, NOW - timedelta(seconds=10), NOW)


def test_a_failed_attempt_is_retried_a_countdown_later_until_the_round_is_spent():
    first = rules.after_attempt(SETTINGS, 1, False, NOW)
    assert (first.outcome, first.retry_at, first.retry_in) == (
        Outcome.RETRY,
        NOW + timedelta(seconds=5),
        5.0,
    )
    assert rules.after_attempt(SETTINGS, 3, False, NOW).outcome == Outcome.FAILED
    assert rules.after_attempt(SETTINGS, 3, True, NOW).outcome == Outcome.DELIVERED
    # A lost attempt waited for its worker already: the next one is due at once.
    assert rules.after_lost_attempt(SETTINGS, 1, NOW).retry_at == NOW
