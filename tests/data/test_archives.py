"""Archives: checksum, safe extraction, extracted once into the cache."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from edgecnn.data import archives
from edgecnn.data.archives import extract_cached, safe_extract
from edgecnn.errors import EdgeCNNError
from edgecnn.hashing import sha256_file


def _tar_with(path, members):
    with tarfile.open(path, "w") as tf:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))
            else:
                info.type = tarfile.SYMTYPE
                info.linkname = payload
                tf.addfile(info)
    return path


@pytest.mark.parametrize(("member", "kind", "payload"), [
    ("../escape.txt", "file", b"x"),
    ("data/link", "link", "/etc/passwd"),
    ("data/link", "link", "../../outside"),
])
def test_tar_members_that_escape_are_refused(tmp_path, member, kind, payload):
    archive = _tar_with(tmp_path / "bad.tar", [("data/ok.txt", "file", b"ok"),
                                               (member, kind, payload)])
    with pytest.raises(EdgeCNNError, match="cannot be extracted safely"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_absolute_tar_member_is_refused(tmp_path):
    # tarfile's "data" filter would strip the leading "/" and extract it: refused before that
    archive = _tar_with(tmp_path / "abs.tar", [("/etc/edgecnn-escape.txt", "file", b"x")])
    with pytest.raises(EdgeCNNError, match=r"'/etc/edgecnn-escape\.txt' would be written outside"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not Path("/etc/edgecnn-escape.txt").exists()


@pytest.mark.parametrize("member", ["../escape.txt", "/abs.txt", "a/../../escape.txt"])
def test_zip_members_that_escape_are_refused(tmp_path, member):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(member, b"x")
    with pytest.raises(EdgeCNNError, match="outside the folder"):
        safe_extract(archive, tmp_path / "out")


def test_extracted_once_and_keyed_by_content(tmp_path, private_cache, monkeypatch):
    archive = _tar_with(tmp_path / "set.tar", [("set/train/a/1.txt", "file", b"one")])
    calls = []
    real = archives.safe_extract
    monkeypatch.setattr(archives, "safe_extract", lambda a, d: (calls.append(a), real(a, d)))
    first = extract_cached(archive)
    second = extract_cached(archive)
    assert first == second and len(calls) == 1
    assert (first / "set/train/a/1.txt").read_bytes() == b"one"
    assert first.is_relative_to(private_cache)
    # A changed archive of the same name is a different cache entry.
    _tar_with(archive, [("set/train/a/1.txt", "file", b"two")])
    assert extract_cached(archive) != first and len(calls) == 2


def test_checksum_mismatch_names_the_file(tmp_path, private_cache):
    archive = _tar_with(tmp_path / "set.tar", [("a.txt", "file", b"a")])
    with pytest.raises(EdgeCNNError, match=r"set.tar: sha256 is [0-9a-f]{64}, expected 00"):
        extract_cached(archive, "00" * 32)
    assert not (private_cache / "extracted").exists() or not any(
        (private_cache / "extracted").iterdir())


def test_sha256_of_the_shared_cifar_archive(shared):
    # The published digest of ../shared/data/cifar10-jpeg.tar.gz (../shared/README.md).
    digest = sha256_file(shared / "data" / "cifar10-jpeg.tar.gz")
    assert digest == "23f88bfe53fbfc9f4f67bd2d3df9256c3daf93811b338151df637ddc19c7bcce"


def test_corrupt_archive_is_a_clear_error(tmp_path, private_cache):
    bad = tmp_path / "broken.tar.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(EdgeCNNError, match=r"broken.tar.gz: cannot be extracted"):
        extract_cached(bad)
    leftovers = list((private_cache / "extracted").iterdir())
    assert leftovers == []  # no half-extracted folder is left behind
