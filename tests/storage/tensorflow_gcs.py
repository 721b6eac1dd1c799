"""Point TensorFlow's own gs:// filesystem at a local GCS emulator, with no root and no fixed port.

TensorFlow's GCS client (`tsl/platform/cloud/gcs_file_system.cc`) has a fixed endpoint:
`https://www.googleapis.com/storage/v1/` and `/upload/storage/v1/` for the JSON API, and
`https://storage.googleapis.com/<bucket>/<object>` for reads; it honours no `STORAGE_EMULATOR_HOST`.
It speaks HTTP through libcurl, though, and libcurl honours the standard `https_proxy`/`http_proxy`
variables. So a child process started with `TensorFlowGcs.environment()` sends every gs:// request to
this relay, an HTTP proxy on a free loopback port that:

- answers `CONNECT www.googleapis.com:443` (and storage.googleapis.com), then terminates TLS itself with
  a throwaway certificate for both names, which the child trusts through `CURL_CA_BUNDLE`;
- forwards each request to the emulator over plain HTTP, whatever host it named (resumable uploads
  come back to the emulator's own `Location` URL through `http_proxy`);
- drops the `Transfer-Encoding: identity` request header TensorFlow sends with uploads: Go's net/http,
  which fake-gcs-server is built on, answers it with 501 Not Implemented.

`GOOGLE_AUTH_TOKEN_FOR_TESTING` gives TensorFlow a fixed bearer token and `NO_GCE_CHECK` stops it
probing the GCE metadata server, so no credentials are needed or looked for.

This replaces an earlier recipe (a private mount namespace with its own /etc/hosts and a relay bound
to 127.0.0.1:443): that one needs root and a privileged port shared by every test run on the machine;
a proxy needs neither, and reaches only the processes given its environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from tests.fixtures.certificates import self_signed

__all__ = [
    "GOOGLE_HOSTS",
    "RelayProcess",
    "TensorFlowGcs",
    "start_tensorflow_gcs",
    "start_tensorflow_gcs_process",
]

#: The hosts TensorFlow's GCS client talks to; the throwaway certificate names both.
GOOGLE_HOSTS = ("www.googleapis.com", "storage.googleapis.com")
_DROPPED_HEADERS = (b"transfer-encoding: identity", b"proxy-connection:")
_HEAD_LIMIT = 1 << 20


class TensorFlowGcs:
    """The relay between TensorFlow's gs:// client and an emulator at `emulator_url` (http://host:port)."""

    def __init__(self, emulator_url: str, *, refuse: int | None = None) -> None:
        parts = urlsplit(emulator_url)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"expected the emulator as http://HOST:PORT, got {emulator_url!r}")
        self._upstream = (parts.hostname, parts.port)
        # `refuse=401` answers every request as GCS answers a bad token, reaching no emulator (an emulator
        # accepts any credentials, so a refusal has to come from here).
        self._refuse = refuse
        self._folder = tempfile.TemporaryDirectory(prefix="layertap-tfgcs-")
        key_pem, cert_pem = self_signed(GOOGLE_HOSTS[0], alternative_names=GOOGLE_HOSTS)
        folder = Path(self._folder.name)
        (folder / "key.pem").write_text(key_pem)
        self.ca_bundle = folder / "ca.pem"
        self.ca_bundle.write_text(cert_pem)
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._tls.load_cert_chain(self.ca_bundle, folder / "key.pem")
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tensorflow-gcs-relay", daemon=True)
        self._stopped: asyncio.Event | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port = 0
        #: Requests relayed so far (a test can check TensorFlow really went through the relay).
        self.requests = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> TensorFlowGcs:
        """Listen on a free port of 127.0.0.1 (in a thread of its own)."""
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the TensorFlow GCS relay did not start within 10 s")
        return self

    def stop(self) -> None:
        """Close the listening socket and every relayed connection, then the relay's thread."""
        if self._thread.is_alive() and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(10)
        self._folder.cleanup()

    def environment(self) -> dict[str, str]:
        """The variables that send a child process's gs:// traffic here (add them to its environment)."""
        proxy = f"http://127.0.0.1:{self.port}"
        return {
            "https_proxy": proxy,
            "http_proxy": proxy,
            "HTTPS_PROXY": proxy,
            "HTTP_PROXY": proxy,
            # Everything goes through the relay, the emulator's own upload URLs included.
            "no_proxy": "",
            "NO_PROXY": "",
            "CURL_CA_BUNDLE": str(self.ca_bundle),
            "GOOGLE_AUTH_TOKEN_FOR_TESTING": "layertap-test-token",
            "NO_GCE_CHECK": "true",
        }

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stopped.wait()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    # ------------------------------------------------------------------ relaying

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(self._client(reader, writer))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        pipe: asyncio.Task[None] | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if head.upper().startswith(b"CONNECT "):
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
                await writer.start_tls(self._tls)
                head = await reader.readuntil(b"\r\n\r\n")
            if self._refuse is not None:
                while head:
                    await self._refuse_request(head, reader, writer)
                    head = await _next_head(reader)
                return
            upstream = await asyncio.open_connection(*self._upstream)
            # Responses flow back untouched; requests are rewritten one at a time, in order.
            pipe = asyncio.ensure_future(_copy(upstream[0], writer))
            while head:
                await self._forward(head, reader, upstream[1])
                head = await _next_head(reader)
            await pipe
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, asyncio.LimitOverrunError):
            pass
        finally:
            if pipe is not None:
                pipe.cancel()
                await asyncio.gather(pipe, return_exceptions=True)
            for stream in (writer, upstream[1] if upstream else None):
                if stream is not None:
                    with contextlib.suppress(Exception):
                        stream.close()

    async def _forward(
        self, head: bytes, reader: asyncio.StreamReader, upstream: asyncio.StreamWriter
    ) -> None:
        self.requests += 1
        lines = head.split(b"\r\n")
        method, target, version = lines[0].split(b" ", 2)
        if not target.startswith(b"/"):
            # A proxy request names the absolute URL; the emulator wants the path.
            parts = urlsplit(target.decode("latin-1"))
            target = (parts.path or "/").encode() + (b"?" + parts.query.encode() if parts.query else b"")
        kept = [line for line in lines[1:] if line and not line.lower().startswith(_DROPPED_HEADERS)]
        upstream.write(b" ".join((method, target, version)) + b"\r\n" + b"\r\n".join(kept) + b"\r\n\r\n")
        length, chunked = 0, False
        for line in kept:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
            elif name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            await _copy_chunked(reader, upstream)
        else:
            while length:
                data = await reader.read(min(length, 1 << 16))
                if not data:
                    raise asyncio.IncompleteReadError(b"", length)
                upstream.write(data)
                length -= len(data)
                await upstream.drain()
        await upstream.drain()

    async def _refuse_request(
        self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.requests += 1
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                await reader.readexactly(int(value.strip()))
        body = json.dumps({"error": {"code": self._refuse, "message": "Invalid Credentials"}}).encode()
        writer.write(
            f"HTTP/1.1 {self._refuse} Refused\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()


async def _next_head(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if error.partial:
            raise
        return b""


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(Exception):
        writer.close()


async def _copy_chunked(reader: asyncio.StreamReader, upstream: asyncio.StreamWriter) -> None:
    while True:
        size_line = await reader.readuntil(b"\r\n")
        upstream.write(size_line)
        size = int(size_line.split(b";")[0].strip(), 16)
        upstream.write(await reader.readexactly(size + 2))
        await upstream.drain()
        if size == 0:
            return


@contextlib.contextmanager
def start_tensorflow_gcs(emulator_url: str, *, refuse: int | None = None) -> Iterator[TensorFlowGcs]:
    """A started relay to the emulator at `emulator_url` (or refusing every request), stopped on exit."""
    relay = TensorFlowGcs(emulator_url, refuse=refuse).start()
    try:
        yield relay
    finally:
        relay.stop()


class RelayProcess:
    """The same relay in a child process (`python -m tests.storage.tensorflow_gcs EMULATOR_URL`), for a test
    whose own process is busy: there, threads calling a server without pause would hold the GIL the relay
    needs for every byte TensorFlow reads."""

    def __init__(self, emulator_url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.storage.tensorflow_gcs", emulator_url],
            cwd=Path(__file__).resolve().parents[2],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError(
                f"the relay process exited with code {self.process.returncode} before it started"
            )
        self._environment: dict[str, str] = json.loads(line)

    def environment(self) -> dict[str, str]:
        """As `TensorFlowGcs.environment()`."""
        return dict(self._environment)

    def stop(self) -> None:
        """Close its stdin (it stops then); SIGKILL after 10 s."""
        assert self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def start_tensorflow_gcs_process(emulator_url: str) -> Iterator[RelayProcess]:
    """A relay to the emulator at `emulator_url` in a child process, stopped on exit."""
    relay = RelayProcess(emulator_url)
    try:
        yield relay
    finally:
        relay.stop()


def _main() -> None:
    with start_tensorflow_gcs(sys.argv[1]) as relay:
        print(json.dumps(relay.environment()), flush=True)
        sys.stdin.read()  # until the parent closes it (or dies)


if __name__ == "__main__":
    _main()
