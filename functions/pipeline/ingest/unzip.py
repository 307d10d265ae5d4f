"""Guarded, streaming extraction of a dataset zip into a MemberSink.

Members are read front to back in archive order through one seekable reader (see seekable.py) and
handed, one at a time on this thread, to a MemberSink (the tar shards the pipeline writes,
shards.py), so memory holds one member whatever the archive size. The sink gets paths rebuilt from
the layout parts (split/class/file), never the raw member name.

What happens to bad input:
- the archive itself (not a zip, too many members, too large in total, layout invalid) -> rejected
  with ArchiveRejectedError before anything is written;
- one member (unsafe path, symlink, encrypted, too large, suspicious compression ratio, duplicate,
  CRC/deflate error, not a decodable JPEG/PNG) -> skipped and counted in the report;
- members outside the layout (``__MACOSX/``, ``.DS_Store``, README...) -> ignored and counted.
"""

from __future__ import annotations

import io
import re
import stat
import struct
import time
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any, Protocol, cast

from pipeline.errors import reraise_if_transient
from pipeline.ingest.image_headers import image_problem

MAX_EXAMPLES = 50


class ArchiveRejectedError(ValueError):
    """The archive as a whole is unusable; nothing was extracted."""


class MemberSink(Protocol):
    """Takes each valid member (``<split>/<class_dir>/<image>``) in archive order, on the extracting
    thread, so what it writes is deterministic. ``TarShardSink`` (pipeline.ingest.shards) is the
    pipeline's; the unzip tests collect members in memory and bench_shards uploads one object each.
    Its errors (S3, transient) propagate out of ``extract``."""

    def add(self, relative: str, data: bytes, info: zipfile.ZipInfo) -> None: ...


@dataclass(frozen=True)
class Limits:
    max_members: int = 100_000
    max_total_bytes: int = 20 * 1024**3
    max_member_bytes: int = 50 * 1024**2
    max_ratio: float = 100.0
    # Width x height from the image header; None: no limit. Ingest passes dogclf.contract's
    # MAX_IMAGE_PIXELS, the value training and serving use, so an image they refuse never gets in.
    max_image_pixels: int | None = None

    @property
    def max_central_directory_bytes(self) -> int:
        # zipfile reads the whole central directory into memory: 1 KiB an entry is ~6x a normal
        # entry (46 bytes + name + extra fields) and keeps that read bounded.
        return self.max_members * 1024


@dataclass
class ExtractionReport:
    members_total: int = 0
    written: int = 0
    bytes_written: int = 0
    ignored: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_examples: list[dict[str, str]] = field(default_factory=list)
    written_paths: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def skip(self, name: str, reason: str) -> None:
        self.skipped[reason] += 1
        if len(self.skipped_examples) < MAX_EXAMPLES:
            self.skipped_examples.append({"member": name[:300], "reason": reason})

    def to_dict(self) -> dict[str, Any]:
        return {
            "members_total": self.members_total,
            "written": self.written,
            "bytes_written": self.bytes_written,
            "ignored": self.ignored,
            "skipped": dict(self.skipped),
            "skipped_total": sum(self.skipped.values()),
            "skipped_examples": self.skipped_examples,
            "seconds": round(self.seconds, 3),
        }


# A regex, not a per-character loop: this runs for every member of archives with 100k members.
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f]")


def unsafe_path_reason(name: str) -> str | None:
    """Why a member name must never be used as a path, or None."""
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":"):
        return "unsafe path (absolute)"
    if ".." in normalized.split("/"):
        return "unsafe path (parent traversal)"
    if _CONTROL_CHARACTER.search(name):
        return "unsafe path (control character)"
    return None


def _entry_problem(info: zipfile.ZipInfo, limits: Limits) -> str | None:
    """Why a member is skipped before reading it, or None (its name is checked separately)."""
    mode = info.external_attr >> 16
    if mode and stat.S_ISLNK(mode):
        return "symlink"
    if info.flag_bits & 0x1:
        return "encrypted"
    if info.file_size > limits.max_member_bytes:
        return "too large"
    if info.file_size > 0 and info.compress_size == 0:
        return "suspicious compression ratio"
    if info.compress_size and info.file_size / info.compress_size > limits.max_ratio:
        return "suspicious compression ratio"
    return None


@dataclass(frozen=True)
class CentralDirectory:
    """What the end-of-central-directory record (zip64 if present) says about the archive."""

    entries: int
    size: int


# signature, disk, cd disk, entries here, entries total, cd size, cd offset, comment length
_EOCD = struct.Struct("<4s4H2LH")
_EOCD_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")  # signature, disk, offset of the zip64 EOCD record, disks
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")  # signature, size, versions, disks, entries x2, size, offset
_ZIP64_EOCD_SIGNATURE = b"PK\x06\x06"
_MAX_COMMENT = 0xFFFF


def read_central_directory_record(fileobj: IO[bytes] | io.RawIOBase) -> CentralDirectory:
    """Member count and central-directory size from the archive's last bytes, without parsing the
    central directory itself (zipfile.ZipFile reads and parses all of it when it opens the file)."""
    size = fileobj.seek(0, io.SEEK_END)
    tail_start = max(0, size - _EOCD.size - _MAX_COMMENT)
    fileobj.seek(tail_start)
    tail = fileobj.read(size - tail_start) or b""
    position = tail.rfind(_EOCD_SIGNATURE)
    if position < 0 or len(tail) - position < _EOCD.size:
        raise ArchiveRejectedError("not a readable zip archive: no end-of-central-directory record")
    _, _, _, _, entries, cd_size, _, _ = _EOCD.unpack_from(tail, position)
    if entries == 0xFFFF or cd_size == 0xFFFFFFFF:
        locator_at = position - _ZIP64_LOCATOR.size
        if locator_at < 0 or tail[locator_at : locator_at + 4] != _ZIP64_LOCATOR_SIGNATURE:
            raise ArchiveRejectedError("not a readable zip archive: zip64 locator missing")
        _, _, record_offset, _ = _ZIP64_LOCATOR.unpack_from(tail, locator_at)
        fileobj.seek(record_offset)
        record = fileobj.read(_ZIP64_EOCD.size) or b""
        if len(record) < _ZIP64_EOCD.size or record[:4] != _ZIP64_EOCD_SIGNATURE:
            raise ArchiveRejectedError(
                "not a readable zip archive: bad zip64 end-of-central-directory record"
            )
        fields = _ZIP64_EOCD.unpack(record)
        entries, cd_size = fields[7], fields[8]
    fileobj.seek(0)
    return CentralDirectory(entries=entries, size=cd_size)


def check_central_directory(record: CentralDirectory, limits: Limits) -> None:
    """Reject before parsing: too many members, or a central directory too large for that many."""
    if record.entries > limits.max_members:
        raise ArchiveRejectedError(f"{record.entries} members, the limit is {limits.max_members}")
    if record.size > limits.max_central_directory_bytes:
        raise ArchiveRejectedError(
            f"central directory is {record.size} bytes, the limit is {limits.max_central_directory_bytes}"
        )


def open_archive(fileobj: IO[bytes] | io.RawIOBase, limits: Limits | None = None) -> zipfile.ZipFile:
    """Open the archive; with ``limits``, its member count is checked first, from the
    end-of-central-directory record. AWS/network errors while reading propagate (errors.py)."""
    try:
        if limits is not None:
            check_central_directory(read_central_directory_record(fileobj), limits)
        return zipfile.ZipFile(cast(IO[bytes], fileobj))
    except ArchiveRejectedError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, struct.error) as error:
        reraise_if_transient(error)  # a read timeout is not "File is not a zip file"
        raise ArchiveRejectedError(f"not a readable zip archive: {error}") from error


def extract(
    archive: zipfile.ZipFile,
    sink: MemberSink,
    layout: Any,
    limits: Limits,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[ExtractionReport, Any]:
    """Hand the valid images of ``archive`` to ``sink``; returns the report and layout summary.

    ``layout`` is the dogclf.layout module (locate, summarize, DatasetLayoutError).
    """
    started = time.perf_counter()
    report = ExtractionReport()
    infos = archive.infolist()
    report.members_total = len(infos)
    if len(infos) > limits.max_members:
        raise ArchiveRejectedError(f"{len(infos)} members, the limit is {limits.max_members}")
    total = sum(info.file_size for info in infos)
    if total > limits.max_total_bytes:
        raise ArchiveRejectedError(f"{total} bytes uncompressed, the limit is {limits.max_total_bytes}")

    planned: list[tuple[zipfile.ZipInfo, str]] = []
    checked = []  # (info, unsafe path reason, any problem): each member is checked once
    for info in infos:
        unsafe = unsafe_path_reason(info.filename)
        checked.append((info, unsafe, unsafe or _entry_problem(info, limits)))
    candidates = [info.filename for info, _, problem in checked if problem is None]
    try:
        layout.summarize(candidates)
    except layout.DatasetLayoutError as error:
        raise ArchiveRejectedError(f"invalid dataset layout: {error}") from error

    seen_keys: set[str] = set()
    for info, unsafe, problem in checked:
        if unsafe:  # reported even when the name is outside the layout: it is an attack sign
            report.skip(info.filename, unsafe)
            continue
        member = layout.locate(info.filename)
        if member is None:
            if not info.is_dir():
                report.ignored += 1
            continue
        if problem:
            report.skip(info.filename, problem)
            continue
        relative = f"{member.split}/{member.class_dir}/{member.filename}"
        if relative in seen_keys:
            report.skip(info.filename, "duplicate name")
            continue
        seen_keys.add(relative)
        planned.append((info, relative))

    planned.sort(key=lambda item: item[0].header_offset)  # one forward pass over the archive
    _extract_planned(archive, planned, sink, limits, report, on_progress)

    try:
        summary = layout.summarize(report.written_paths)
    except layout.DatasetLayoutError as error:
        report.seconds = time.perf_counter() - started
        raise ArchiveRejectedError(f"invalid dataset after skipping bad members: {error}") from error
    report.seconds = time.perf_counter() - started
    return report, summary


def _extract_planned(
    archive: zipfile.ZipFile,
    planned: Iterable[tuple[zipfile.ZipInfo, str]],
    sink: MemberSink,
    limits: Limits,
    report: ExtractionReport,
    on_progress: Callable[[int], None] | None,
) -> None:
    for index, (info, relative) in enumerate(planned):
        try:
            with archive.open(info) as member_file:
                data = member_file.read(limits.max_member_bytes + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as error:
            reraise_if_transient(error)  # a read timeout does not make the member corrupt
            report.skip(info.filename, f"corrupt ({type(error).__name__}: {error})"[:200])
            continue
        if len(data) > limits.max_member_bytes:
            report.skip(info.filename, "too large")
            continue
        problem = image_problem(data, max_pixels=limits.max_image_pixels)
        if problem:
            report.skip(info.filename, f"not an image: {problem}")
            continue
        sink.add(relative, data, info)  # errors (S3, transient) propagate
        report.written += 1
        report.bytes_written += len(data)
        report.written_paths.append(relative)
        if on_progress and index % 500 == 0:
            on_progress(index)
