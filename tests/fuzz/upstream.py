"""A scripted HTTP/1.1 upstream for fuzzing the Open Platform client.

A raw asyncio server, not aiohttp.web: the fuzzer needs answers no well-behaved server
framework produces (wrong Content-Length, broken chunking, 1xx/204 with bodies, invalid
header bytes, bodies that trickle or never end). Each `Case` is one answer, serialisable
to JSON so that every input that ever broke something can live in tests/fuzz/corpus/.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import EllipsisType
from typing import Any

FRAMINGS = ("length", "chunked", "close", "long", "short")
ENCODINGS = ("identity", "gzip", "deflate", "bogus")


@dataclass
class Case:
    """One answer of the upstream, and the call made to get it."""

    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    framing: str = "length"  # see FRAMINGS
    encoding: str = "identity"  # see ENCODINGS
    repeat: int = 0  # > 0: the body is `body` repeated up to this many bytes (huge bodies)
    raw: bytes | None = None  # sent verbatim instead of status line + headers + body
    pre: bytes = b""  # sent before the status line (e.g. an interim 100 Continue)
    delay: float = 0.0  # seconds between body pieces (trickle)
    piece: int = 0  # body piece size when trickling (0: one piece)
    hang: bool = False  # keep the connection open after the answer
    secret: str = "fuzz-app-secret-0123456789"
    app_id: str = "cli_fuzz"
    token_type: str = "tenant"
    why: str = ""  # corpus entries say what they once broke

    def __repr__(self) -> str:
        return "Case(" + json.dumps(self.to_json(), ensure_ascii=True)[:2000] + ")"

    # --- the bytes on the wire -----------------------------------------------------------
    def payload(self) -> bytes:
        """The body as sent (after content coding); not for `repeat` cases."""
        if self.encoding == "gzip":
            return gzip.compress(self.body)
        if self.encoding == "deflate":
            return zlib.compress(self.body)
        return self.body

    def head(self, length: int | None) -> bytes:
        lines = [f"HTTP/1.1 {self.status} X".encode()]
        names = {n.lower() for n, _ in self.headers}
        for name, value in self.headers:
            lines.append(name.encode("utf-8", "surrogateescape") + b": " + _hb(value))
        if self.encoding != "identity" and "content-encoding" not in names:
            lines.append(
                b"Content-Encoding: " + (b"deflate" if self.encoding == "deflate" else b"gzip")
            )
        if self.framing == "chunked":
            lines.append(b"Transfer-Encoding: chunked")
        elif self.framing in ("length", "long", "short") and length is not None:
            declared = {"length": length, "long": length + 17, "short": max(0, length // 2)}
            lines.append(f"Content-Length: {declared[self.framing]}".encode())
        lines.append(b"Connection: close" if self.framing == "close" else b"Connection: keep-alive")
        return self.pre + b"\r\n".join(lines) + b"\r\n\r\n"

    def pieces(self) -> Iterator[bytes]:
        """Everything the server writes, in order."""
        if self.raw is not None:
            yield self.raw
            return
        if self.repeat:
            unit = self.body or b"x"
            yield self.head(self.repeat if self.framing != "chunked" else None)
            sent, block = 0, unit * max(1, 65536 // len(unit))
            while sent < self.repeat:
                part = block[: self.repeat - sent]
                sent += len(part)
                yield _chunk(part) if self.framing == "chunked" else part
            if self.framing == "chunked":
                yield b"0\r\n\r\n"
            return
        body = self.payload()
        yield self.head(len(body))
        size = self.piece or max(1, len(body))
        parts = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
        for part in parts:
            if self.framing == "chunked":
                if part:
                    yield _chunk(part)
            else:
                yield part
        if self.framing == "chunked":
            yield b"0\r\n\r\n"

    def effective_body(self) -> bytes | EllipsisType | None:
        """What a correct HTTP client hands over as the body: None when the answer is not a
        complete, well-framed HTTP message (the client must report an error), ... when the
        answer is legal but odd enough that either outcome is acceptable."""
        if self.raw is not None or self.pre:
            return ...
        if self.repeat or self.encoding == "bogus" or self.framing == "long":
            return None
        if self.framing == "short":
            if self.encoding != "identity":
                return ...
            return self.body[: len(self.body) // 2]
        return self.body

    # --- corpus form ---------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"why": self.why, "status": self.status}
        out.update(_bytes_field("body", self.body))
        if self.raw is not None:
            out.update(_bytes_field("raw", self.raw))
        if self.pre:
            out.update(_bytes_field("pre", self.pre))
        default = Case()
        for name in (
            "framing",
            "encoding",
            "repeat",
            "delay",
            "piece",
            "hang",
            "secret",
            "app_id",
            "token_type",
        ):
            if getattr(self, name) != getattr(default, name):
                out[name] = getattr(self, name)
        if self.headers:
            out["headers"] = [list(h) for h in self.headers]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Case:
        kw = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for name in ("body", "raw", "pre"):
            kw.pop(name, None)
            if f"{name}_b64" in data:
                kw[name] = base64.b64decode(data[f"{name}_b64"])
            elif name in data:
                value = data[name]
                kw[name] = (
                    json.dumps(value).encode() if isinstance(value, dict | list) else value.encode()
                )
        if "headers" in data:
            kw["headers"] = [tuple(h) for h in data["headers"]]
        return cls(**kw)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n")


def _bytes_field(name: str, value: bytes) -> dict[str, str]:
    try:
        text = value.decode()
    except UnicodeDecodeError:
        return {f"{name}_b64": base64.b64encode(value).decode()}
    return {name: text}


def _hb(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


def _chunk(part: bytes) -> bytes:
    return f"{len(part):x}\r\n".encode() + part + b"\r\n"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    sent: int = 0  # bytes of answer written before the client went away


class ScriptedUpstream:
    """Answers every request with the current `case`; records what it was asked."""

    def __init__(self) -> None:
        self.case = Case()
        self.requests: list[Request] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> ScriptedUpstream:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self.settle()

    def reset(self, case: Case) -> None:
        self.case, self.requests = case, []

    async def settle(self, timeout: float = 5.0) -> None:
        """Wait for the connections of the last call to end (the client closes them)."""
        pending = [t for t in self._handlers if not t.done()]
        if not pending:
            return
        _, still = await asyncio.wait(pending, timeout=timeout)
        for t in still:
            t.cancel()
        if still:
            await asyncio.wait(still, timeout=1.0)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        case = self.case
        try:
            while True:  # keep-alive: a retry may come on the same connection
                request = await _read_request(reader)
                if request is None:
                    return
                self.requests.append(request)
                for piece in case.pieces():
                    writer.write(piece)
                    await writer.drain()
                    request.sent += len(piece)
                    if case.delay:
                        await asyncio.sleep(case.delay)
                if case.hang:
                    await reader.read()  # until the client gives up and closes
                if case.hang or case.raw is not None or case.framing in ("close", "long"):
                    return
                if case.status < 200 or case.pre:
                    # The client waits for a final answer after an interim one: end it here
                    # (waiting for the timeout is what the slow-upstream tests do).
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
    return Request(method, path, headers, body)
