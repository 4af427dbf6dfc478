"""What bounds the server's memory and descriptors: uploads refused before their body is read when
there is no room, a cap on uploads received at once, header and body timeouts, and a per-upload
limit that counts the enhanced output and its panels, not only the decoded input."""

from __future__ import annotations

import asyncio
import math
import threading
from pathlib import Path
from typing import IO, Any

from starlette.requests import Request

from ..io import resolve_format
from .errors import UserError

MAX_CONCURRENT_UPLOADS = 4
HEADER_TIMEOUT_S = 10.0
BODY_IDLE_TIMEOUT_S = 30.0
MAX_CONNECTIONS = 64
# Bytes an upload costs per decoded input sample while it is processed and kept: the float32 input,
# and per output sample (scale² of them) the float32 output, its two 8-bit panels and the written file.
INPUT_BYTES, OUTPUT_BYTES = 4, 8


class UploadSlots:
    """At most ``limit`` uploads received and decoded at once; the next is refused before its body is read."""

    def __init__(self, limit: int = MAX_CONCURRENT_UPLOADS) -> None:
        self.limit = limit
        self._busy = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._busy >= self.limit:
                return False
            self._busy += 1
            return True

    def give(self) -> None:
        with self._lock:
            self._busy -= 1


async def stream_body(request: Request, fh: IO[bytes], max_bytes: int, limit_text: str,
                      idle_s: float = BODY_IDLE_TIMEOUT_S) -> int:
    """Copy the request body into ``fh``; 413 past ``max_bytes``, 408 when no data came for ``idle_s``."""
    size = 0
    chunks = request.stream().__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(chunks.__anext__(), idle_s)
        except StopAsyncIteration:
            return size
        except asyncio.TimeoutError:
            raise UserError(408, f"the upload stalled (no data for {idle_s:g} s)") from None
        size += len(chunk)
        if size > max_bytes:
            raise UserError(413, f"file too large: {limit_text}")
        fh.write(chunk)


def upload_bytes(samples: int, factor: int) -> int:
    """Memory one upload of ``samples`` decoded samples costs when enhanced ``factor``× in area."""
    return samples * (INPUT_BYTES + OUTPUT_BYTES * factor)


def check_upload_memory(path: Path, fmt: str, factor: int, max_pixels: int | None) -> None:
    """413 when the upload's input and ``factor``× output together pass the budget of ``max_pixels``.

    The budget is what ``max_pixels`` decoded samples cost when enhanced, so ``--max-pixels`` still
    reads as the largest input, but a scan's output and panels count against it.
    """
    if not max_pixels:
        return
    shape, samples = resolve_format(fmt).declared_size(path)
    need, budget = upload_bytes(samples, factor), upload_bytes(max_pixels, 16)
    if need > budget:
        dims = "x".join(str(s) for s in shape)
        raise UserError(413, f"scan too large: {dims} needs about {math.ceil(need / 2**20)} MB to enhance, over the "
                             f"server's limit of {budget / 2**20:.0f} MB per scan")


def guarded_protocol() -> type:
    """uvicorn's h11 protocol that closes a connection whose request headers are not complete in time."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeout(H11Protocol):
        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._header_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._headers_late)

        def _headers_late(self) -> None:
            if self.cycle is None and not self.transport.is_closing():
                self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            self._header_timer.cancel()
            super().connection_lost(exc)

    return HeaderTimeout
