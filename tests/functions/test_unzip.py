"""The guarded streaming unzip against valid and hostile archives (no AWS: an in-memory MemberSink)."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest
from fn_support import TRAINING_DIR, build_zip, layout_members, sample_zip_bytes, tiny_jpeg

from pipeline.adapters.training_layer import layout_module
from pipeline.ingest.seekable import S3RangeReader
from pipeline.ingest.unzip import ArchiveRejectedError, Limits, extract, open_archive

layout = layout_module(TRAINING_DIR)


class MemorySink:
    """A MemberSink that keeps each member by the relative path it was given."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def add(self, relative: str, data: bytes, info: zipfile.ZipInfo) -> None:
        assert relative not in self.objects, f"{relative} written twice"
        self.objects[relative] = data


def run(archive_bytes: bytes, limits: Limits | None = None, block_size: int = 4096):
    reader = S3RangeReader(lambda start, end: archive_bytes[start : end + 1], len(archive_bytes), block_size)
    writer = MemorySink()
    with open_archive(reader) as archive:
        report, summary = extract(archive, writer, layout, limits or Limits())
    return report, summary, writer, reader


def test_sample_dataset_is_extracted_completely_under_the_prefix(tmp_path: Path) -> None:
    data = sample_zip_bytes(tmp_path)
    report, summary, writer, reader = run(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        images = {
            info.filename.split("/", 1)[1]: archive.read(info)
            for info in archive.infolist()
            if layout.locate(info.filename)
        }
    assert writer.objects == images
    assert report.written == len(images)
    assert sum(report.skipped.values()) == 0
    assert summary.to_dict()["images"] == {"train": 12, "valid": 6, "test": 6}
    assert len(summary.classes) == 3
    # Read front to back: every byte fetched about once (plus the central directory at the end).
    assert reader.bytes_fetched <= 2 * len(data)


def test_hostile_members_are_skipped_and_never_reach_the_sink_outside_the_layout() -> None:
    members = layout_members()
    good = tiny_jpeg(99)
    symlink = zipfile.ZipInfo("dogImages/train/001.Breed_1/link.jpg")
    symlink.external_attr = (stat.S_IFLNK | 0o777) << 16
    bomb = zipfile.ZipInfo("dogImages/train/001.Breed_1/bomb.jpg")
    bomb.compress_type = zipfile.ZIP_DEFLATED
    extra = [
        (zipfile.ZipInfo("../../etc/train/001.Breed_1/evil.jpg"), good),
        (zipfile.ZipInfo("/abs/train/001.Breed_1/evil2.jpg"), good),
        (zipfile.ZipInfo("dogImages/train/../../001.Breed_1/evil3.jpg"), good),
        (symlink, b"/etc/passwd"),
        (bomb, b"\xff\xd8\xff" + bytes(5_000_000)),
        (zipfile.ZipInfo("dogImages/train/002.Breed_2/notes.jpg"), b"this is text, not a JPEG"),
        (zipfile.ZipInfo("dogImages/train/002.Breed_2/cut.jpg"), tiny_jpeg(5)[:-40]),
        (zipfile.ZipInfo("dogImages/README.txt"), b"readme"),
        (zipfile.ZipInfo("__MACOSX/dogImages/train/._x.jpg"), b"junk"),
    ]
    report, _, writer, _ = run(build_zip(members, extra))
    assert all(key.split("/")[0] in layout.SPLITS and ".." not in key.split("/") for key in writer.objects)
    assert len(writer.objects) == len(members)
    assert report.skipped == {
        "unsafe path (parent traversal)": 2,
        "unsafe path (absolute)": 1,
        "symlink": 1,
        "suspicious compression ratio": 1,
        "not an image: not a JPEG or PNG image (unknown signature)": 1,
        "not an image: truncated JPEG (no end-of-image marker)": 1,
    }
    assert report.ignored == 2  # README.txt and the __MACOSX resource fork


def test_duplicate_and_encrypted_members_are_skipped() -> None:
    members = layout_members()
    first_name = next(iter(members))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr(first_name, tiny_jpeg(42))
        archive.writestr("dogImages/valid/001.Breed_1/secret.jpg", tiny_jpeg(43))
    data = buffer.getvalue()
    reader = S3RangeReader(lambda start, end: data[start : end + 1], len(data))
    writer = MemorySink()
    with open_archive(reader) as archive:
        # zipfile cannot write encrypted members: flag one as such, the way a real one is flagged.
        archive.getinfo("dogImages/valid/001.Breed_1/secret.jpg").flag_bits |= 0x1
        report, _ = extract(archive, writer, layout, Limits())
    assert report.skipped == {"duplicate name": 1, "encrypted": 1}
    # The first copy wins; the second never overwrites it.
    assert writer.objects[first_name.split("/", 1)[1]] == members[first_name]


def test_corrupt_member_data_is_skipped_by_crc() -> None:
    members = layout_members()
    victim = "dogImages/test/002.Breed_2/img_1.jpg"
    data = bytearray(build_zip(members))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo(victim)
    # Flip a byte inside the member's compressed data (after its 30-byte local header and name).
    offset = info.header_offset + 30 + len(info.filename.encode()) + info.compress_size // 2
    data[offset] ^= 0xFF
    report, _, writer, _ = run(bytes(data))
    assert sum(report.skipped.values()) == 1
    assert next(iter(report.skipped)).startswith("corrupt")
    assert victim.split("/", 1)[1] not in writer.objects


def test_invalid_layout_rejects_the_archive_before_writing() -> None:
    members = {name: data for name, data in layout_members().items() if "/test/" not in name}
    with pytest.raises(ArchiveRejectedError, match="missing split"):
        run(build_zip(members))


def test_dataset_left_invalid_by_skipped_members_is_rejected() -> None:
    members = layout_members(per_split=1)
    members["dogImages/valid/002.Breed_2/img_0.jpg"] = b"not an image at all"
    with pytest.raises(ArchiveRejectedError, match="after skipping bad members"):
        run(build_zip(members))


def test_archive_level_limits_and_non_zip_input() -> None:
    archive = build_zip(layout_members())
    with pytest.raises(ArchiveRejectedError, match="members, the limit is 5"):
        run(archive, Limits(max_members=5))
    with pytest.raises(ArchiveRejectedError, match="bytes uncompressed"):
        run(archive, Limits(max_total_bytes=100))
    with pytest.raises(ArchiveRejectedError, match="not a readable zip"):
        run(b"PK\x03\x04 definitely not a zip archive" * 10)


def test_range_reader_seeks_and_reads_like_a_file() -> None:
    data = bytes(range(256)) * 100
    reader = S3RangeReader(lambda start, end: data[start : end + 1], len(data), block_size=1000)
    reader.seek(-10, io.SEEK_END)
    assert reader.read() == data[-10:]
    reader.seek(995)
    assert reader.read(10) == data[995:1005]
    assert reader.tell() == 1005
    assert reader.read(0) == b""
    reader.seek(len(data) + 5)
    assert reader.read(3) == b""
    reader.close()
