"""Upload: images, captions and zips go into origin/; each refused file is listed with its reason."""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from lib_train_tools.datasets.image_checks import ImageLimits, ImageRejected, check_image_bytes
from lib_train_tools.datasets.origin_files import drop_images, list_origin
from lib_train_tools.datasets.preprocess import PreprocessOptions, preprocess
from lib_train_tools.datasets.safe_zip import ZipLimits
from lib_train_tools.datasets.small_images import small_images
from lib_train_tools.datasets.upload import upload
from lib_train_tools.projects.settings import save_settings

from .conftest import noise_image, tree_hashes


def png_bytes(seed: int, size=(64, 64)) -> bytes:
    buffer = io.BytesIO()
    noise_image(seed, size).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(seed: int, size=(64, 64)) -> bytes:
    buffer = io.BytesIO()
    noise_image(seed, size).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def huge_png_header(width: int = 20000, height: int = 20000) -> bytes:
    """A tiny file whose PNG header declares a huge image (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + pixels + chunk(b"IEND", b"")


def origin_names(version) -> list[str]:
    return sorted(p.name for p in version.origin.iterdir())


def test_loose_images_and_captions_round_trip(version, source_files):
    seen = []
    result = upload(version, source_files, progress=lambda done, total, name: seen.append((done, total)))
    assert len(result.added) == 40 and not result.refused
    assert origin_names(version) == sorted(p.name for p in source_files)
    for path in source_files:
        assert (version.origin / path.name).read_bytes() == path.read_bytes()
    items = list_origin(version)
    assert len(items) == 20 and all(i.caption is not None for i in items)
    assert seen[-1] == (40, 40) and len(seen) == 40


def test_upload_adds_and_never_replaces_silently(version, source_files, tmp_path):
    upload(version, source_files)
    again = upload(version, source_files)
    assert again.added == () and len(again.skipped) == 40
    other = tmp_path / "other"
    other.mkdir()
    (other / "img00.png").write_bytes(png_bytes(99))
    (other / "img00.txt").write_text("new, caption", encoding="utf-8")
    result = upload(version, [other / "img00.png", other / "img00.txt"])
    assert result.added == ("img00 (2).png", "img00 (2).txt")
    assert (version.origin / "img00 (2).txt").read_text(encoding="utf-8") == "new, caption"
    assert (version.origin / "img00.png").read_bytes() == source_files[0].read_bytes()


def test_a_different_caption_for_an_existing_image_is_refused(version, source_files, tmp_path):
    upload(version, source_files)
    changed = tmp_path / "img03.txt"
    changed.write_text("something else", encoding="utf-8")
    result = upload(version, [changed])
    assert result.added == ()
    assert "already holds a different caption" in result.refused[0].reason
    assert (version.origin / "img03.txt").read_bytes() == source_files[7].read_bytes()


def test_replace_is_explicit_and_keeps_the_old_files(version, source_files, tmp_path):
    upload(version, source_files)
    fresh = tmp_path / "fresh.png"
    fresh.write_bytes(png_bytes(50))
    result = upload(version, [fresh], replace=True)
    assert origin_names(version) == ["fresh.png"]
    assert result.replaced_to is not None and len(list(result.replaced_to.iterdir())) == 40


def test_bad_files_are_refused_with_reasons_and_the_rest_goes_in(version, tmp_path):
    files = {
        "good.png": png_bytes(1),
        "good.txt": b"1girl, smile",
        "empty.png": b"",
        "text.png": b"this is not an image\n",
        "truncated.jpg": jpeg_bytes(2)[: len(jpeg_bytes(2)) * 2 // 3],
        "cut_header.jpg": jpeg_bytes(2)[:300],
        "bomb.png": huge_png_header(),
        "binary.txt": b"\xff\xfe\x00\x01",
    }
    paths = []
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)
    result = upload(version, paths)
    reasons = {r.name: r.reason for r in result.refused}
    assert "empty file (0 bytes)" in reasons["empty.png"]
    assert "not an image" in reasons["text.png"]
    assert "truncated image data" in reasons["truncated.jpg"]
    assert "truncated image header" in reasons["cut_header.jpg"]
    assert "decompression bomb" in reasons["bomb.png"]
    assert "not a text file" in reasons["binary.txt"]
    assert origin_names(version) == ["good.png", "good.txt"]


def make_zip(path: Path, tmp_root: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("set/a.png", png_bytes(10))
        archive.writestr("set/a.txt", "1girl, from zip")
        archive.writestr("other/a.png", png_bytes(11))
        archive.writestr("other/a.txt", "second a")
        archive.writestr("日本語.png", png_bytes(12))
        archive.writestr("../evil.txt", "escape")
        archive.writestr(zipfile.ZipInfo("/abs.png"), png_bytes(13))
        link = zipfile.ZipInfo("link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, str(tmp_root / "secret"))
        archive.writestr("__MACOSX/set/._a.png", b"resource fork")
        archive.writestr("set/.DS_Store", b"junk")
        archive.writestr("inner.zip", b"PK")
        archive.writestr("set/", b"")


def test_zip_is_extracted_safely(version, tmp_path):
    archive = tmp_path / "upload.zip"
    make_zip(archive, tmp_path)
    before_top = [p.name for p in tmp_path.iterdir()]
    result = upload(version, [archive])
    assert origin_names(version) == ["a (2).png", "a (2).txt", "a.png", "a.txt", "日本語.png"]
    assert (version.origin / "a.txt").read_text(encoding="utf-8") == "1girl, from zip"
    assert (version.origin / "a (2).txt").read_text(encoding="utf-8") == "second a"
    reasons = {r.name: r.reason for r in result.refused}
    assert "outside the archive" in reasons["upload.zip:../evil.txt"]
    assert "absolute path" in reasons["upload.zip:/abs.png"]
    assert "symbolic link" in reasons["upload.zip:link.png"]
    assert "zip inside a zip" in reasons["upload.zip:inner.zip"]
    assert {s.name for s in result.skipped} == {"upload.zip:__MACOSX/set/._a.png", "upload.zip:set/.DS_Store"}
    assert not list(tmp_path.rglob("evil.txt")) and not Path("/abs.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before_top)


def test_zip_limits_and_corrupt_archives(version, tmp_path):
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for index in range(5):
            handle.writestr(f"{index}.png", png_bytes(index))
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 not really")
    result = upload(version, [archive, broken], zip_limits=ZipLimits(max_entries=4))
    reasons = {r.name: r.reason for r in result.refused}
    assert "over the limit of 4" in reasons["many.zip"]
    assert "not a valid zip" in reasons["broken.zip"]
    small_total = upload(version, [archive], zip_limits=ZipLimits(max_total_bytes=len(png_bytes(0)) * 2 + 10))
    assert len(small_total.added) == 2
    assert sum("total size" in r.reason for r in small_total.refused) == 3


def test_gif_and_webp_are_accepted(version, tmp_path):
    gif = tmp_path / "anim.gif"
    frames = [noise_image(i).convert("P") for i in range(3)]
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    webp = tmp_path / "pic.webp"
    noise_image(4).save(webp)
    result = upload(version, [gif, webp])
    assert sorted(result.added) == ["anim.gif", "pic.webp"] and not result.refused


def test_check_image_bytes_reports_size():
    facts = check_image_bytes(png_bytes(1, (80, 64)), "x.png")
    assert (facts.width, facts.height, facts.format) == (80, 64, "PNG")
    with pytest.raises(ImageRejected, match="over the 100-pixel limit"):
        check_image_bytes(png_bytes(1), "x.png", ImageLimits(max_pixels=100))


def test_drop_images_moves_pairs_out_of_origin(version, source_files):
    upload(version, source_files)
    target = drop_images(version, ["img01", "img02"])
    assert sorted(p.name for p in target.iterdir()) == ["img01.png", "img01.txt", "img02.png", "img02.txt"]
    assert len(list_origin(version)) == 18
    with pytest.raises(FileNotFoundError, match="nope"):
        drop_images(version, ["nope"])


def test_oversized_loose_file_is_refused_before_reading(version, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(png_bytes(1))
    result = upload(version, [big], image_limits=ImageLimits(max_file_bytes=100))
    assert "over the 100-byte limit" in result.refused[0].reason
    assert origin_names(version) == []


def test_a_zip_of_the_dataset_round_trips_like_loose_files(version, source_files, tmp_path):
    archive = tmp_path / "dataset.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as handle:
        for path in source_files:
            handle.write(path, f"my set/{path.name}")
        handle.writestr("__MACOSX/my set/._img00.png", b"resource fork")
    result = upload(version, [archive])
    assert len(result.added) == 40 and not result.refused and len(result.skipped) == 1
    assert tree_hashes(version.origin) == {p.name: tree_hashes(p.parent)[p.name] for p in source_files}


def test_bad_inputs_leave_the_existing_dataset_intact(loaded, tmp_path):
    """Every bad input of the acceptance list at once, into a version that already has 20 images."""
    before = tree_hashes(loaded.dataset)
    bad = tmp_path / "bad"
    bad.mkdir()
    files = {"empty.png": b"", "text.png": b"not an image at all\n", "bomb.png": huge_png_header(),
             "truncated.jpg": jpeg_bytes(2)[: len(jpeg_bytes(2)) * 2 // 3], "new.png": png_bytes(77)}
    for name, data in files.items():
        (bad / name).write_bytes(data)
    archive = bad / "evil.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("../evil.txt", "escape")
        handle.writestr(zipfile.ZipInfo("/etc/evil.png"), png_bytes(13))
        link = zipfile.ZipInfo("link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        handle.writestr(link, "/etc/passwd")
        handle.writestr("img00.txt", "would overwrite a caption")
    result = upload(loaded, [bad / name for name in files] + [archive])
    reasons = {r.name: r.reason for r in result.refused}
    assert set(reasons) == {"empty.png", "text.png", "bomb.png", "truncated.jpg", "evil.zip:../evil.txt",
                            "evil.zip:/etc/evil.png", "evil.zip:link.png", "evil.zip:img00.txt"}
    assert result.added == ("new.png",)
    after = tree_hashes(loaded.dataset)
    assert {k: v for k, v in after.items() if k != "origin/new.png"} == before
    assert not (tmp_path / "evil.txt").exists() and not list(tmp_path.rglob("evil.txt"))


def test_bmp_with_a_dot_caption_file_pairs_up(version, tmp_path):
    noise_image(8).save(tmp_path / "scan.bmp")
    (tmp_path / "scan.caption").write_text("1girl, scanned", encoding="utf-8")
    result = upload(version, [tmp_path / "scan.bmp", tmp_path / "scan.caption"])
    assert sorted(result.added) == ["scan.bmp", "scan.caption"] and not result.refused
    (item,) = list_origin(version)
    assert item.caption.name == "scan.caption" and item.read_caption() == "1girl, scanned"


def test_long_file_names_are_shortened_to_leave_room_for_suffixes(version, tmp_path):
    """A 244-byte name on disk and a 600-byte one inside a zip are stored (with their captions) under
    stems of at most 200 bytes, so "-part3-flip.png" and temporary names still fit 255 bytes."""
    on_disk = tmp_path / ("あ" * 80 + ".png")
    on_disk.write_bytes(png_bytes(30, (256, 64)))
    (tmp_path / ("あ" * 80 + ".txt")).write_text("from disk", encoding="utf-8")
    archive = tmp_path / "long.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("写" * 200 + ".png", png_bytes(31, (256, 64)))
        handle.writestr("写" * 200 + ".txt", "from the zip")
    result = upload(version, [on_disk, on_disk.with_suffix(".txt"), archive])
    assert not result.refused and len(result.added) == 4
    captions = {item.stem[0]: item.read_caption() for item in list_origin(version)}
    assert captions == {"あ": "from disk", "写": "from the zip"}
    assert all(len(p.stem.encode("utf-8")) <= 200 for p in version.origin.iterdir())
    assert (version.origin / ("あ" * 66 + ".png")).read_bytes() == on_disk.read_bytes()
    options = PreprocessOptions(width=32, height=32, mode="crop", split_ratio=1.5, flip_copies=True)
    result = preprocess(version, options)  # 4:1 images: split into "-partN" pieces, each flipped
    assert not result.refused and len(result.outputs) == 2 * 2 * 5



@pytest.mark.parametrize("size,note", [
    ((8, 8), "8x8: will be upscaled 64x for training at 512x512, expect blur"),
    ((80, 40), "80x40: will be upscaled 9.1x for training at 512x512, expect blur"),
])
def test_very_small_images_are_accepted_and_flagged(version, tmp_path, size, note):
    path = tmp_path / "tiny.png"
    path.write_bytes(png_bytes(3, size))
    result = upload(version, [path])
    assert result.added == ("tiny.png",) and not result.refused
    assert [(r.name, r.reason) for r in result.small] == [("tiny.png", note + "; drop it unless you need it")]
    assert origin_names(version) == ["tiny.png"]


def test_small_image_factor_uses_the_version_resolution(version, tmp_path):
    save_settings(version, {"resolution": "1024,1024"})
    for name, size in (("tiny.png", (8, 8)), ("fine.png", (640, 640)), ("half.png", (512, 256))):
        (tmp_path / name).write_bytes(png_bytes(3, size))
    result = upload(version, [tmp_path / "tiny.png", tmp_path / "fine.png", tmp_path / "half.png"])
    assert len(result.added) == 3
    assert {r.name: r.reason.split(";")[0] for r in result.small} == {
        "tiny.png": "8x8: will be upscaled 128x for training at 1024x1024, expect blur",
        "half.png": "512x256: will be upscaled 2.8x for training at 1024x1024, expect blur",
    }
    listed = small_images(version)
    assert [(s.stem, s.width, s.height, round(s.factor, 1)) for s in listed] == [
        ("tiny", 8, 8, 128.0), ("half", 512, 256, 2.8)]
    assert listed[0].note.startswith("8x8: will be upscaled 128x")
    assert small_images(version, (512, 512))[0].note.startswith("8x8: will be upscaled 64x for training at 512x512")
    drop_images(version, [s.stem for s in listed])
    assert origin_names(version) == ["fine.png"] and small_images(version) == []


def test_small_images_preprocess_and_train_without_errors(version, tmp_path):
    (tmp_path / "tiny.png").write_bytes(png_bytes(3, (8, 8)))
    (tmp_path / "wide.png").write_bytes(png_bytes(4, (80, 40)))
    upload(version, [tmp_path / "tiny.png", tmp_path / "wide.png"])
    for mode in ("keep_aspect", "crop"):
        result = preprocess(version, PreprocessOptions(width=64, height=64, mode=mode))
        assert sorted(result.outputs) == ["tiny.png", "wide.png"] and not result.refused
    from lib_train_tools.train.data import DataOptions, TrainingDataset

    dataset = TrainingDataset.from_folders(DataOptions(train_dir=version.processed_parent))
    assert len(dataset.items) == 2
