"""Dataset downloads against an HTTP server on 127.0.0.1 serving archives built in the test.

No real network: every archive is made here (tiny PNGs written with PIL) and served by a
thread; the catalog's own entries are exercised through a mirror URL (``base_url`` or
``SRLAB_DATASET_MIRROR``), with verification off where the catalog holds the real archive's
checksum.
"""

from __future__ import annotations

import hashlib
import io
import re
import socket
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srlab.data import CATALOG, get_image_set, list_pairs
from srlab.data.catalog import ARCHIVE_FORMATS, Archive, DownloadInfo, Extract, ImageSet
from srlab.data.download import (
    MIRROR_ENV,
    DownloadError,
    archive_url,
    download_set,
    download_sets,
    main,
    missing_folders,
)
from srlab.fetch import ChecksumError, FetchError, NetworkError, fetch

FAST = {"backoff": 0.01, "progress": False}  # retries without waiting, no bars in test logs


# -- an HTTP server with files in memory -----------------------------------------------------


class Server:
    """Files served by path; ``cut_once`` paths send a short body the first time."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_once: set[str] = set()
        self.hits: list[str] = []
        self.base = ""


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """A threaded HTTP server on an ephemeral port of 127.0.0.1."""
    # A proxy configured in the environment must not intercept the local server.
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    state = Server()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits.append(self.path)
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if self.path in state.cut_once:
                # Announce the full size, send half, hang up: a transfer cut mid-body.
                state.cut_once.discard(self.path)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True
                return
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


# -- archives built here ---------------------------------------------------------------------


def png(side: int, seed: int) -> bytes:
    """A small random RGB PNG."""
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def make_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return buffer.getvalue()


def make_tar(
    members: dict[str, bytes], symlinks: dict[str, str] | None = None, mode: str = "w"
) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


STEMS = ("0001", "0002")


def div2k_like_archives() -> dict[str, bytes]:
    """Two zips laid out like DIV2K's: HR, and LR x2 in a scale subfolder."""
    return {
        "Fake_train_HR.zip": make_zip(
            {f"Fake_train_HR/{stem}.png": png(8, i) for i, stem in enumerate(STEMS)}
            | {"Fake_train_HR/Thumbs.db": b"junk", "__MACOSX/Fake_train_HR/._0001.png": b"fork"}
        ),
        "Fake_train_LR_bicubic_X2.zip": make_zip(
            {
                f"Fake_train_LR_bicubic/X2/{stem}x2.png": png(4, 9 + i)
                for i, stem in enumerate(STEMS)
            }
        ),
    }


def fake_div2k(archives: dict[str, bytes], fmt: str = "zip") -> ImageSet:
    """A DIV2K-like catalog entry whose checksums are those of ``archives``."""
    hr_name, lr_name = list(archives)
    return ImageSet(
        name="FakeDIV2K",
        hr_dir="FakeDIV2K/Fake_train_HR",
        lr_dir="FakeDIV2K/Fake_train_LR_bicubic/X{scale}",
        lr_name="{stem}x{scale}{ext}",
        download=DownloadInfo(
            homepage="http://example.invalid/",
            archives=(
                Archive(
                    url=f"http://example.invalid/{hr_name}",
                    format=fmt,
                    extracts=(Extract("Fake_train_HR", "FakeDIV2K/Fake_train_HR", 2),),
                    sha256=sha256(archives[hr_name]),
                ),
                Archive(
                    url=f"http://example.invalid/{lr_name}",
                    format=fmt,
                    extracts=(
                        Extract(
                            "Fake_train_LR_bicubic/X2",
                            "FakeDIV2K/Fake_train_LR_bicubic/X2",
                            2,
                            scale=2,
                        ),
                    ),
                    sha256=sha256(archives[lr_name]),
                ),
            ),
            images=2,
        ),
    )


@pytest.fixture
def fake_set(server: Server, monkeypatch: pytest.MonkeyPatch) -> ImageSet:
    """The DIV2K-like set in the catalog as ``fake_div2k``, its archives on the server."""
    archives = div2k_like_archives()
    server.files.update({f"/{name}": data for name, data in archives.items()})
    image_set = fake_div2k(archives)
    monkeypatch.setitem(CATALOG, "fake_div2k", image_set)
    return image_set


def leftovers(root: Path) -> list[str]:
    """Anything a download must never leave behind: .part files, staging or archive folders."""
    if not root.exists():
        return []
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.name.endswith(".part") or p.name.startswith(".srlab-extract-") or p.name == "downloads"
    )


# -- tests -----------------------------------------------------------------------------------


def test_good_archives_are_fetched_verified_and_laid_out(
    tmp_path: Path, server: Server, fake_set: ImageSet
) -> None:
    root = tmp_path / "data"
    hr = download_set("fake_div2k", root, base_url=server.base, **FAST)
    assert hr == root.resolve() / "FakeDIV2K/Fake_train_HR"
    assert sorted(server.hits) == ["/Fake_train_HR.zip", "/Fake_train_LR_bicubic_X2.zip"]
    pairs = list_pairs(get_image_set("fake_div2k"), root, 2)
    assert [p.name for p in pairs] == list(STEMS)
    assert all(p.lr is not None and p.lr.name == f"{p.name}x2.png" for p in pairs)
    # Only images are extracted: no Thumbs.db, no macOS resource forks.
    assert sorted(f.name for f in (root / "FakeDIV2K/Fake_train_HR").iterdir()) == [
        "0001.png",
        "0002.png",
    ]
    assert leftovers(root) == []  # archives deleted after extraction, no .part, no staging
    assert missing_folders("fake_div2k", root) == []

    # Complete folders are skipped without any request.
    download_set("fake_div2k", root, base_url=server.base, **FAST)
    assert len(server.hits) == 2


def test_catalog_benchmark_mapping_fetches_the_shared_tar_once(
    tmp_path: Path, server: Server
) -> None:
    # EDSR's benchmark.tar layout (as in the catalog) with tiny images: Set5 keeps its names,
    # B100 becomes BSD100 with its LR renamed to <name>_SRF_<s>_LR.png.
    members = {}
    for folder, stems in (("Set5", ["baby", "bird", "butterfly", "head", "woman"]),
                          ("B100", [str(3000 + i) for i in range(100)])):  # fmt: skip
        for i, stem in enumerate(stems):
            members[f"benchmark/{folder}/HR/{stem}.png"] = png(12, i)
            for s in (2, 3, 4):
                members[f"benchmark/{folder}/LR_bicubic/X{s}/{stem}x{s}.png"] = png(12 // s, i)
    server.files["/benchmark.tar"] = make_tar(members)
    root = tmp_path / "data"
    # verify=False: the catalog holds the MD5 of the real archive, not of this one.
    folders = download_sets(["set5", "bsd100"], root, base_url=server.base, verify=False, **FAST)
    assert folders == [root.resolve() / "Set5/HR", root.resolve() / "BSD100/HR"]
    assert server.hits == ["/benchmark.tar"]
    for scale in (2, 3, 4):
        set5 = list_pairs(get_image_set("set5"), root, scale)
        assert [p.lr.name for p in set5][0] == f"babyx{scale}.png"
        bsd = list_pairs(get_image_set("bsd100"), root, scale)
        assert len(bsd) == 100 and bsd[0].lr.name == f"3000_SRF_{scale}_LR.png"
    assert leftovers(root) == []


def test_scales_limit_the_lr_folders_fetched(
    tmp_path: Path, server: Server, fake_set: ImageSet
) -> None:
    root = tmp_path / "data"
    download_set("fake_div2k", root, scales=(), base_url=server.base, **FAST)
    assert server.hits == ["/Fake_train_HR.zip"]
    assert not (root / "FakeDIV2K/Fake_train_LR_bicubic").exists()
    assert [p.lr for p in list_pairs(fake_set, root, 2)] == [None, None]  # LR made from HR


def test_corrupted_archive_fails_the_checksum_and_leaves_nothing(
    tmp_path: Path, server: Server, fake_set: ImageSet
) -> None:
    good = server.files["/Fake_train_HR.zip"]
    server.files["/Fake_train_HR.zip"] = good[:-40] + bytes(40)  # damaged on the way
    root = tmp_path / "data"
    with pytest.raises(ChecksumError) as info:
        download_set("fake_div2k", root, base_url=server.base, **FAST)
    message = str(info.value)
    assert "Fake_train_HR.zip" in message and "sha256" in message and "--no-verify" in message
    assert sha256(good) in message and sha256(server.files["/Fake_train_HR.zip"]) in message
    assert not (root / "FakeDIV2K").exists()
    assert leftovers(root) == []
    assert server.hits == ["/Fake_train_HR.zip"]  # a checksum failure is not retried


@pytest.mark.parametrize(
    ("fmt", "evil", "shown"),
    [
        ("zip", {"../evil.png": b"x"}, "../evil.png"),
        ("zip", {"Fake_train_HR/../../evil.png": b"x"}, "Fake_train_HR/../../evil.png"),
        ("zip", {"/tmp/evil.png": b"x"}, "/tmp/evil.png"),
        ("tar.gz", {"../evil.png": b"x"}, "../evil.png"),
        ("tar.gz", {"/tmp/evil.png": b"x"}, "/tmp/evil.png"),
        ("tar.gz", "symlink", "Fake_train_HR/0003.png"),
    ],
)
def test_unsafe_members_are_refused(
    tmp_path: Path,
    server: Server,
    monkeypatch: pytest.MonkeyPatch,
    fmt: str,
    evil: dict[str, bytes] | str,
    shown: str,
) -> None:
    good = {f"Fake_train_HR/{stem}.png": png(8, i) for i, stem in enumerate(STEMS)}
    lr = {f"Fake_train_LR_bicubic/X2/{stem}x2.png": png(4, i) for i, stem in enumerate(STEMS)}
    if fmt == "zip":
        hr_data, lr_data = make_zip(good | evil), make_zip(lr)
    elif evil == "symlink":  # a link inside the HR folder to a file outside the root
        outside = "../" * 6 + "etc/passwd"
        hr_data = make_tar(good, {"Fake_train_HR/0003.png": outside}, mode="w:gz")
        lr_data = make_tar(lr, mode="w:gz")
    else:
        hr_data, lr_data = make_tar(good | evil, mode="w:gz"), make_tar(lr, mode="w:gz")
    ext = "zip" if fmt == "zip" else "tar.gz"
    archives = {f"Fake_train_HR.{ext}": hr_data, f"Fake_train_LR_bicubic_X2.{ext}": lr_data}
    server.files.update({f"/{name}": data for name, data in archives.items()})
    monkeypatch.setitem(CATALOG, "fake_div2k", fake_div2k(archives, fmt))
    root = tmp_path / "sandbox" / "data"
    with pytest.raises(DownloadError) as info:
        download_set("fake_div2k", root, base_url=server.base, **FAST)
    message = str(info.value)
    assert "refusing to extract" in message and repr(shown) in message
    assert not (root / "FakeDIV2K").exists()
    assert leftovers(root) == []
    assert not list(tmp_path.rglob("evil.png")) and not Path("/tmp/evil.png").exists()


def test_interrupted_transfer_is_retried_cleanly(
    tmp_path: Path, server: Server, fake_set: ImageSet
) -> None:
    server.cut_once.add("/Fake_train_HR.zip")
    root = tmp_path / "data"
    download_set("fake_div2k", root, base_url=server.base, **FAST)
    assert server.hits.count("/Fake_train_HR.zip") == 2
    assert len(list_pairs(fake_set, root, 2)) == 2
    assert leftovers(root) == []


def test_transfer_cut_on_every_attempt_fails_without_a_part_file(
    tmp_path: Path, server: Server
) -> None:
    server.files["/w.bin"] = b"0123456789" * 100

    class Always(set):
        def discard(self, item: str) -> None:  # stays "cut" on every request
            pass

    server.cut_once = Always({"/w.bin"})
    with pytest.raises(FetchError, match=r"closed after 500 of 1000 bytes \(2 attempts\)"):
        fetch(f"{server.base}/w.bin", tmp_path / "w.bin", retries=1, backoff=0.01)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_host_names_the_urls_and_the_layout(
    tmp_path: Path, server: Server, fake_set: ImageSet
) -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}/mirror"
    root = tmp_path / "data"
    with pytest.raises(NetworkError) as info:  # the fetch's own error, with the hint added
        download_set("fake_div2k", root, base_url=base, **FAST)
    message = str(info.value)
    resolved = root.resolve()
    for name in ("Fake_train_HR.zip", "Fake_train_LR_bicubic_X2.zip"):
        assert f"{base}/{name}" in message
        assert str(resolved / "downloads" / name) in message
    assert fake_set.layout(resolved) in message
    assert f"{resolved / 'FakeDIV2K/Fake_train_HR'}: 2 images" in message
    assert "by hand" in message
    assert not (root / "FakeDIV2K").exists() and leftovers(root) == []


def test_archive_put_by_hand_is_verified_and_used_offline(
    tmp_path: Path, server: Server, fake_set: ImageSet
) -> None:
    root = tmp_path / "data"
    (root / "downloads").mkdir(parents=True)
    for name in ("Fake_train_HR.zip", "Fake_train_LR_bicubic_X2.zip"):
        (root / "downloads" / name).write_bytes(server.files[f"/{name}"])
    download_set("fake_div2k", root, base_url="http://127.0.0.1:9/unused", **FAST)
    assert server.hits == []
    assert len(list_pairs(fake_set, root, 2)) == 2
    # Files a person put there are theirs: kept.
    assert sorted(p.name for p in (root / "downloads").iterdir()) == [
        "Fake_train_HR.zip",
        "Fake_train_LR_bicubic_X2.zip",
    ]


def test_incomplete_folder_is_kept_unless_forced(
    tmp_path: Path, server: Server, fake_set: ImageSet
) -> None:
    root = tmp_path / "data"
    hr = root / "FakeDIV2K/Fake_train_HR"
    hr.mkdir(parents=True)
    (hr / "0001.png").write_bytes(png(8, 0))
    with pytest.raises(DownloadError, match="exist but are incomplete") as info:
        download_set("fake_div2k", root, base_url=server.base, **FAST)
    assert "1 images, expected 2" in str(info.value) and "--force" in str(info.value)
    assert server.hits == []
    download_set("fake_div2k", root, base_url=server.base, force=True, **FAST)
    assert len(list_pairs(fake_set, root, 2)) == 2 and leftovers(root) == []


def test_wrong_archive_layout_keeps_the_archive_and_moves_nothing(
    tmp_path: Path, server: Server, fake_set: ImageSet
) -> None:
    server.files["/Fake_train_HR.zip"] = make_zip({"Other/0001.png": png(8, 0)})
    image_set = fake_div2k(
        {
            "Fake_train_HR.zip": server.files["/Fake_train_HR.zip"],
            "Fake_train_LR_bicubic_X2.zip": server.files["/Fake_train_LR_bicubic_X2.zip"],
        }
    )
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match="holds 0 images, expected 2") as info:
        download_set(image_set, root, base_url=server.base, **FAST)
    assert "['Other']" in str(info.value)
    assert (root / "downloads/Fake_train_HR.zip").is_file()  # kept for a fix by hand
    assert not (root / "FakeDIV2K").exists()


def test_sets_without_a_public_download_explain_the_manual_layout(tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as info:
        download_set("manga109", tmp_path)
    message = str(info.value)
    assert "manga109.org" in message and str(tmp_path.resolve() / "Manga109" / "HR") in message
    with pytest.raises(DownloadError, match="not a catalog set with a known download"):
        download_set({"name": "Mine", "hr_dir": "mine"}, tmp_path)  # type: ignore[arg-type]


def test_cli_downloads_through_the_mirror_variable(
    tmp_path: Path,
    server: Server,
    fake_set: ImageSet,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(MIRROR_ENV, server.base + "/")
    root = tmp_path / "data"
    assert main(["fake_div2k", "--root", str(root), "--scale", "2"]) == 0
    assert f"fake_div2k: {root.resolve() / 'FakeDIV2K/Fake_train_HR'}" in capsys.readouterr().out
    assert len(list_pairs(fake_set, root, 2)) == 2

    assert main(["manga109", "--root", str(root)]) == 1
    assert "manga109.org" in capsys.readouterr().err
    assert main(["--list", "--root", str(root)]) == 0
    listing = capsys.readouterr().out
    assert re.search(r"fake_div2k\s+FakeDIV2K\s+complete", listing)
    assert "DIV2K_train_HR.zip [zip, sha256]" in listing


def test_catalog_download_metadata_matches_the_catalog_layout() -> None:
    urls_by_name: dict[str, str] = {}
    for key, image_set in CATALOG.items():
        info = image_set.download
        if info is None:
            continue
        assert info.homepage, key
        for archive in info.archives:
            assert archive.format in ARCHIVE_FORMATS
            assert archive.url.startswith(("http://", "https://"))
            # A mirror serves archives by file name: one name must mean one archive.
            assert urls_by_name.setdefault(archive.filename, archive.url) == archive.url
            assert archive.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", archive.sha256)
            assert archive.md5 is None or re.fullmatch(r"[0-9a-f]{32}", archive.md5)
            if archive.sha256 or archive.md5:
                assert archive.checksum_source, f"{key}: say where the checksum comes from"
            assert archive_url(archive, "http://m/") == f"http://m/{archive.filename}"
        for _, extract in info.extracts():
            if extract.scale is None:  # HR lands where the set reads HR
                assert extract.target == image_set.hr_dir, key
                assert extract.count == info.images, key
            else:  # LR lands where the set reads LR, under the name it expects
                assert extract.target == image_set.lr_dir.format(scale=extract.scale), key
                name = f"0801x{extract.scale}.png"
                if extract.rename:
                    name = re.sub(extract.rename[0], extract.rename[1], name)
                expected = image_set.lr_name.format(stem="0801", scale=extract.scale, ext=".png")
                assert name == expected, key
    for key in ("div2k_train", "div2k_valid", "div2k_train_unknown", "div2k_valid_unknown",
                "flickr2k", "set5", "set14", "bsd100", "urban100", "t91"):  # fmt: skip
        assert CATALOG[key].download.archives, key
    assert CATALOG["div2k_valid"].download.images == 100
    assert CATALOG["flickr2k"].download.images == 2650


def test_sets_laid_out_by_hand_pass_through(tmp_path: Path) -> None:
    # Every set of a config can be handed over: those srlab cannot fetch but that are there
    # (a described folder, Manga109 copied by hand) are accepted without any request.
    for folder in ("mine", "Manga109/HR"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "a.png").write_bytes(png(8, 0))
    spec = {"name": "Mine", "hr_dir": "mine"}
    assert download_sets([spec, "manga109"], tmp_path) == [
        tmp_path.resolve() / "mine",
        tmp_path.resolve() / "Manga109/HR",
    ]


def test_datamodule_download_flag_fetches_before_verify(
    tmp_path: Path, server: Server, fake_set: ImageSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    from srlab.data import SRDataModule

    monkeypatch.setenv("SRLAB_DATASET_MIRROR", server.base)
    root = tmp_path / "data"
    datamodule = SRDataModule(
        scale=2, root=root, train="fake_div2k", val_sets=["fake_div2k"], download=True,
        num_workers=0, patch_size=8,
    )  # fmt: skip
    datamodule.prepare_data()
    datamodule.verify()
    assert [p.name for p in datamodule.train_pairs()] == list(STEMS)
