"""How an I/O-free core asks a transport for I/O: a call of the client API is a generator of steps.

A core method such as `LayerCore.predict` is a generator: it yields `Send` (requests to put on the
wire) or `Sleep` (a pause), receives the replies' bytes, has the transport's errors thrown into it
where the step was yielded, and returns the call's result. Every decision (what to send, whether
to ask again, when to give up) lives in that generator, written once; `Transport.run` and
`AsyncTransport.run` only carry the steps out, blocking or awaited. This is the "sans-I/O" shape
of protocol libraries such as h11: the same logic serves the sync and the asyncio clients.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from layertap.errors import LayertapError

__all__ = ["Done", "Flow", "Outcome", "Send", "Sleep", "Step", "resume"]

T = TypeVar("T")


@dataclass(frozen=True)
class Send:
    """Send `requests` to the method at `path`; the reply is their answers' bytes, in order.

    Attributes:
        path: the gRPC method path (`layertap.proto.methods`).
        requests: serialized request messages; several are sent concurrently.
        deadline: `time.monotonic()` by which every request, retries included, must be answered.
        concurrency: how many of `requests` may be in flight at once.
    """

    path: str
    requests: Sequence[bytes]
    deadline: float | None
    concurrency: int = 1


@dataclass(frozen=True)
class Sleep:
    """Pause for `seconds` (never negative); the reply is empty."""

    seconds: float


Step = Send | Sleep
# A call of the client API: yields steps, receives each step's replies, returns the result.
Flow = Generator[Step, Sequence[bytes], T]
# What the transport hands back for the last step: its replies, or the error it failed with
# (None before the first step).
Outcome = Sequence[bytes] | LayertapError | None


@dataclass(frozen=True)
class Done(Generic[T]):
    """The flow has returned `value`: the call's result."""

    value: T


def resume(flow: Flow[T], outcome: Outcome) -> Step | Done[T]:
    """The flow's next step after `outcome` (an error is raised inside the flow), or its result."""
    try:
        if outcome is None:
            return next(flow)
        if isinstance(outcome, LayertapError):
            return flow.throw(outcome)
        return flow.send(outcome)
    except StopIteration as stop:
        return Done(stop.value)
