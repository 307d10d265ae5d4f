"""Bounded memory at ingest, whatever the archive claims: the member count is checked from the
end-of-central-directory record before zipfile parses the central directory, and an image whose
header declares more pixels than training and serving accept is rejected as a bad image."""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib

import pytest
from fn_support import ENV, TRAINING_DIR, build_zip, layout_members, s3_event

from pipeline.adapters.training_layer import contract_module
from pipeline.ingest.image_headers import image_problem, image_size
from pipeline.ingest.unzip import ArchiveRejectedError, Limits, open_archive, read_central_directory_record

BUCKET = ENV["DATASET_BUCKET"]


def png_header_only_image(width: int, height: int) -> bytes:
    """A valid 1-bit grayscale PNG of width x height (all black): tiny on disk, huge decoded."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    row = b"\x00" + bytes((width + 7) // 8)
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def test_member_count_is_checked_before_the_central_directory_is_parsed(monkeypatch) -> None:
    archive = build_zip({f"dogImages/train/001.A/{index}.jpg": b"x" for index in range(30)})

    def parse(self: zipfile.ZipFile) -> None:
        raise AssertionError("the central directory was parsed before the member limit applied")

    monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents", parse)
    with pytest.raises(ArchiveRejectedError, match="30 members, the limit is 10"):
        open_archive(io.BytesIO(archive), Limits(max_members=10))


def test_an_oversized_central_directory_is_rejected_before_parsing(monkeypatch) -> None:
    # Few members with very long names: the count passes, the directory's size does not.
    archive = build_zip({"dogImages/train/001.A/" + "n" * 3000 + f"{index}.jpg": b"x" for index in range(5)})
    monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents", lambda self: pytest.fail("parsed"))
    with pytest.raises(ArchiveRejectedError, match=r"central directory is \d+ bytes, the limit is 5120"):
        open_archive(io.BytesIO(archive), Limits(max_members=5))


def test_central_directory_record_matches_what_zipfile_reads() -> None:
    archive = build_zip(layout_members())
    record = read_central_directory_record(io.BytesIO(archive))
    with zipfile.ZipFile(io.BytesIO(archive)) as parsed:
        assert record.entries == len(parsed.infolist()) == 12
    assert 0 < record.size < len(archive)


def test_image_size_reads_jpeg_and_png_headers() -> None:
    from PIL import Image

    for size, fmt in (((37, 21), "JPEG"), ((640, 480), "PNG"), ((5, 900), "JPEG")):
        buffer = io.BytesIO()
        Image.new("RGB", size, (10, 20, 30)).save(
            buffer, format=fmt, **({"progressive": True} if fmt == "JPEG" else {})
        )
        assert image_size(buffer.getvalue()) == size


def test_pixel_limit_is_the_contracts_and_applies_to_both_formats() -> None:
    limit = contract_module(TRAINING_DIR).MAX_IMAGE_PIXELS
    big = png_header_only_image(20000, 20000)
    assert image_problem(big) is None  # structurally fine: only the pixel limit refuses it
    assert "20000x20000" in str(image_problem(big, max_pixels=limit))
    assert image_problem(png_header_only_image(64, 64), max_pixels=limit) is None


def test_a_20000_pixel_square_png_is_rejected_at_ingest_as_a_bad_image(aws, lambda_context) -> None:
    from pipeline.handlers import ingest

    members = layout_members()
    big = zipfile.ZipInfo("dogImages/train/001.Breed_1/huge.png")
    big.compress_type = zipfile.ZIP_STORED  # no zip-level ratio alarm: only the pixel limit applies
    aws.s3.put_object(
        Bucket=BUCKET,
        Key="uploads/bomb.zip",
        Body=build_zip(members, [(big, png_header_only_image(20000, 20000))]),
    )
    [report] = ingest.handler(s3_event("ingest.json", BUCKET, "uploads/bomb.zip"), lambda_context)
    assert report["status"] == "accepted"
    extraction = report["extraction"]
    assert extraction["written"] == len(members) and extraction["skipped_total"] == 1
    [example] = extraction["skipped_examples"]
    assert example["member"].endswith("huge.png") and "pixels" in example["reason"]
    index = json.loads(
        aws.s3.get_object(Bucket=BUCKET, Key=f"datasets/{report['dataset_id']}/index.json")["Body"].read()
    )
    names = [m["name"] for shards in index["splits"].values() for shard in shards for m in shard["members"]]
    assert len(names) == len(members) and not [name for name in names if name.endswith("huge.png")]


def test_zip64_member_count_is_read_from_the_zip64_record(monkeypatch) -> None:
    # Over 65535 members: the classic record says 0xFFFF, the real count is in the zip64 record.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for index in range(0x10000 + 5):
            archive.writestr(f"{index:x}", b"")
    record = read_central_directory_record(io.BytesIO(buffer.getvalue()))
    assert record.entries == 0x10000 + 5
    monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents", lambda self: pytest.fail("parsed"))
    with pytest.raises(ArchiveRejectedError, match="65541 members, the limit is 1000"):
        open_archive(io.BytesIO(buffer.getvalue()), Limits(max_members=1000))
