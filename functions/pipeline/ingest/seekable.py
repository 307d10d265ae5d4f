"""A read-only, seekable file object over an S3 object, backed by ranged GETs with read-ahead.

zipfile needs ``seek``/``tell``/``read``: the central directory sits at the end of the archive, the
members are then read front to back. Reads are served from fixed-size blocks; the block after the
one being read is fetched in the background so downloading overlaps decompression. Memory is
bounded by two blocks whatever the archive size.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from pipeline.errors import TransientError

RangeFetcher = Callable[[int, int], bytes]  # (start, end_inclusive) -> bytes


class S3RangeReader(io.RawIOBase):
    def __init__(self, fetch: RangeFetcher, size: int, block_size: int = 8 * 1024 * 1024) -> None:
        super().__init__()
        self._fetch = fetch
        self._size = size
        self._block_size = block_size
        self._position = 0
        self._blocks: dict[int, bytes] = {}
        self._pending: dict[int, Future[bytes]] = {}
        self._prefetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s3-read-ahead")
        self.requests = 0
        self.bytes_fetched = 0

    # io protocol -------------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        elif whence == io.SEEK_END:
            position = self._size + offset
        else:
            raise ValueError(f"bad whence {whence}")
        if position < 0:
            raise OSError(f"negative seek position {position}")
        self._position = position
        return position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._size - self._position
        size = min(size, max(0, self._size - self._position))
        chunks = []
        while size > 0:
            index, offset = divmod(self._position, self._block_size)
            block = self._block(index)
            piece = block[offset : offset + size]
            if not piece:
                break
            chunks.append(piece)
            self._position += len(piece)
            size -= len(piece)
        return b"".join(chunks)

    def close(self) -> None:
        self._prefetcher.shutdown(wait=False, cancel_futures=True)
        self._blocks.clear()
        super().close()

    # blocks ------------------------------------------------------------------------------------
    def _block(self, index: int) -> bytes:
        block = self._blocks.get(index)
        if block is None:
            future = self._pending.pop(index, None)
            block = future.result() if future is not None else self._download(index)
            # Keep only the current block: zip members are read front to back.
            self._blocks = {index: block}
            self._drop_stale_prefetches(index)
        if (index + 1) * self._block_size < self._size and index + 1 not in self._pending:
            self._pending[index + 1] = self._prefetcher.submit(self._download, index + 1)
        return block

    def _drop_stale_prefetches(self, index: int) -> None:
        for stale in [key for key in self._pending if key not in (index, index + 1)]:
            self._pending.pop(stale).cancel()

    def _download(self, index: int) -> bytes:
        start = index * self._block_size
        end = min(self._size, start + self._block_size) - 1
        data = self._fetch(start, end)
        # S3 answered with fewer bytes than asked (a dropped stream): retry, never "bad zip".
        if len(data) != end - start + 1:
            raise TransientError(
                f"short ranged read: wanted {end - start + 1} bytes at {start}, got {len(data)}"
            )
        self.requests += 1
        self.bytes_fetched += len(data)
        return data
