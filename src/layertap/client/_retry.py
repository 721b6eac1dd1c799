"""When to try a failed call again: UNAVAILABLE only, exponential backoff with jitter, within the deadline.

The policy is a small value object (like httpx's Timeout); `Attempts` is the state of one call's
attempts, shared by the sync and the asyncio client, which only differ in how they sleep.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc

from layertap.client._errors import RETRYABLE, code_name

__all__ = ["Attempts", "Retry", "send_with_retries", "send_with_retries_async"]


@dataclass(frozen=True)
class Retry:
    """How often and how patiently to retry calls the server refused as UNAVAILABLE.

    Args:
        attempts: total tries per call, the first included (1 means never retry).
        initial_backoff: seconds before the first retry; doubles (`multiplier`) after each one.
        max_backoff: the longest pause between two tries.
        multiplier: growth of the pause.
        jitter: fraction of each pause drawn at random, so many clients do not retry in lockstep.
    """

    attempts: int = 4
    initial_backoff: float = 0.05
    max_backoff: float = 1.0
    multiplier: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"Retry.attempts must be at least 1, got {self.attempts}")
        if self.initial_backoff < 0 or self.max_backoff < self.initial_backoff:
            raise ValueError(
                f"Retry backoffs must satisfy 0 <= initial_backoff <= max_backoff, got "
                f"{self.initial_backoff} and {self.max_backoff}"
            )
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"Retry.jitter must be within [0, 1], got {self.jitter}")

    def backoff(self, retry_number: int, rng: random.Random | None = None) -> float:
        """The pause before retry number `retry_number` (1 for the first retry)."""
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** (retry_number - 1))
        draw = (rng or random).random()
        return base * (1 - self.jitter * draw)


class Attempts:
    """The attempts of one call: the time left before its deadline and whether to try again.

    Args:
        retry: the policy, or None for a single attempt.
        deadline: `time.monotonic()` by which the call, retries and pauses included, must end;
            None for no deadline.
    """

    def __init__(self, retry: Retry | None, deadline: float | None) -> None:
        self._retry = retry
        self._deadline = deadline
        self.made = 0

    def remaining(self) -> float | None:
        """Seconds left for the next attempt (never negative), or None without a deadline."""
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def start(self) -> float | None:
        """Count an attempt; returns its timeout."""
        self.made += 1
        return self.remaining()

    def pause_before_retry(self, error: grpc.RpcError) -> float | None:
        """The pause before trying again after `error`, or None if the call must fail with it now."""
        if self._retry is None or code_name(error) not in RETRYABLE or self.made >= self._retry.attempts:
            return None
        pause = self._retry.backoff(self.made)
        left = self.remaining()
        # A retry that could not start before the deadline would only turn UNAVAILABLE into a timeout.
        if left is not None and pause >= left:
            return None
        return pause


def send_with_retries(
    send: Callable[[float | None], bytes], attempts: Attempts, failed: Callable[[grpc.RpcError], Exception]
) -> bytes:
    """`send(timeout)` until it answers or `attempts` says to give up; then raise `failed(error)`."""
    while True:
        try:
            return send(attempts.start())
        except grpc.RpcError as error:
            pause = attempts.pause_before_retry(error)
            if pause is None:
                raise failed(error) from error
            time.sleep(pause)


async def send_with_retries_async(
    send: Callable[[float | None], Awaitable[bytes]],
    attempts: Attempts,
    failed: Callable[[grpc.RpcError], Exception],
) -> bytes:
    """The asyncio twin of `send_with_retries`: the same decisions, awaited."""
    while True:
        try:
            return await send(attempts.start())
        except grpc.RpcError as error:
            pause = attempts.pause_before_retry(error)
            if pause is None:
                raise failed(error) from error
            await asyncio.sleep(pause)
