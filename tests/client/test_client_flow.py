"""The clients' flows: an I/O-free core yields steps, a transport carries them out and throws the
transport's errors back into the flow where the step was yielded (sync and asyncio alike)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from layertap import errors
from layertap.client._base_core import Core
from layertap.client._flow import Flow, Send, Sleep
from layertap.client._status import parse_status, status_request
from layertap.client._transport import AsyncTransport, Transport
from layertap.proto import methods
from tests.fixtures.client_peer import MODEL, Peer


def _recovering(core: Core, seen: list[object]) -> Flow[str]:
    """Ask for a version the peer lacks, then for the model: the error arrives at the first yield."""
    missing = Core(core.settings.target, MODEL, version=7)
    try:
        yield Send(methods.GET_MODEL_STATUS, [status_request(missing.settings.spec())], None)
    except errors.ModelNotFoundError as error:
        seen.append(error.code)
    seen.append((yield Sleep(0.0)))
    replies: Sequence[bytes] = yield Send(
        methods.GET_MODEL_STATUS, [status_request(core.settings.spec())], 5.0e9
    )
    seen.extend((status.version, status.state) for status in parse_status(replies[0]))
    return "done"


def test_errors_go_back_into_the_flow_and_replies_come_out_of_yield(peer_target: str, peer: Peer) -> None:
    core = Core(peer_target, MODEL)
    seen: list[object] = []
    transport = Transport(core.settings, core.error)
    try:
        assert transport.run(_recovering(core, seen)) == "done"
    finally:
        transport.close()
    assert seen == ["NOT_FOUND", (), (1, "AVAILABLE")]

    async def awaited() -> tuple[str, list[object]]:
        twin_seen: list[object] = []
        twin = AsyncTransport(core.settings, core.error)
        try:
            return await twin.run(_recovering(core, twin_seen)), twin_seen
        finally:
            await twin.close()

    assert asyncio.run(awaited()) == ("done", seen)
