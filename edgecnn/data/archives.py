"""Archives of image folders: verified against a sha256, extracted safely, once, into the cache.

Extraction goes into a temporary folder beside the final one and is renamed into place only when
complete, so a killed extraction leaves nothing that looks finished. Members with absolute paths
or ``..`` components are refused (checked by hand for both formats: tarfile's ``data`` filter
would strip a leading ``/`` and extract such a member), and so are links pointing outside the
destination (tarfile's ``data`` filter; zip links by hand, since zipfile has no filter).
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from edgecnn.errors import EdgeCNNError
from edgecnn.hashing import sha256_file
from edgecnn.settings import cache_dir

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")


def is_archive(path: Path) -> bool:
    return path.name.endswith(ARCHIVE_SUFFIXES)


def verify_sha256(path: Path, expected: str) -> None:
    actual = sha256_file(path)
    if actual != expected.lower():
        raise EdgeCNNError(
            f"{path}: sha256 is {actual}, expected {expected}; the file is corrupt or not the "
            "one the dataset definition names"
        )


def _check_member(name: str, archive: Path) -> None:
    """Refuse absolute names and ``..``: tarfile's ``data`` filter would strip a leading ``/``
    and extract the member anyway, where an archive meaning ``/etc/x`` is not a dataset."""
    parts = PurePosixPath(name).parts
    if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        raise EdgeCNNError(f"{archive} cannot be extracted safely: member {name!r} would be "
                           "written outside the folder")


def safe_extract(archive: Path, destination: Path) -> None:
    """Extract ``archive`` into ``destination`` (which must not exist yet), refusing escapes."""
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    _check_member(info.filename, archive)
                    # Symlinks in zips are stored as files with the link bit in external_attr.
                    if (info.external_attr >> 16) & 0o170000 == 0o120000:
                        raise EdgeCNNError(f"{archive}: member {info.filename!r} is a link")
                zf.extractall(destination)
        else:
            with tarfile.open(archive) as tf:
                for member in tf.getmembers():
                    _check_member(member.name, archive)
                tf.extractall(destination, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise EdgeCNNError(f"{archive}: cannot be extracted safely ({exc})") from exc


def extract_cached(archive: Path, sha256: str | None = None) -> Path:
    """The extracted folder of ``archive`` in the cache, extracting it the first time only.

    The cache entry is keyed by the archive's sha256 (checked against ``sha256`` when given), so
    a changed archive is extracted afresh and two archives of the same name never collide.
    """
    if not archive.is_file():
        raise EdgeCNNError(f"data archive {archive} does not exist")
    digest = sha256_file(archive)
    if sha256 is not None and digest != sha256.lower():
        raise EdgeCNNError(
            f"{archive}: sha256 is {digest}, expected {sha256}; the file is corrupt or not the "
            "one the dataset definition names"
        )
    stem = archive.name
    for suffix in ARCHIVE_SUFFIXES:
        stem = stem.removesuffix(suffix)
    final = cache_dir() / "extracted" / f"{stem}-{digest[:16]}"
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        safe_extract(archive, staging / "content")
        (staging / "content").rename(final)
    except FileExistsError:
        pass  # another process finished first; its copy is identical
    except OSError as exc:
        if not final.is_dir():
            raise EdgeCNNError(f"cannot extract {archive} into {final.parent}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
