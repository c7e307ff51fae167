"""Content digests of file inputs, memoised by what ``stat`` says of the file.

A ``pathlib.Path`` given to a step (as its input or in a field) is keyed by what the file
holds, not by its name: editing the data recomputes, as editing the code does. Hashing a
large file on every run would cost a pass over its bytes, so a digest is remembered under the
file's (device, inode, size, mtime_ns, ctime_ns): an unchanged file costs one ``stat``. The
change time cannot be set back by tools that preserve modification times (``cp -p``,
``rsync -t``, ``touch -d``), so a file rewritten in place with its old mtime is hashed again.

A digest taken while the file was still within ``RACY_SECONDS`` of its last change is
not remembered: a write within the same timestamp tick could follow unseen (git's "racily
clean" rule).

Digests are remembered in the process and, for the cache folders a step uses, in the folder's
``.assay-filedigests`` file (one JSON line per file, appended), so the next process reuses them.
"""

from __future__ import annotations

import json
import mmap
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import xxhash

#: Name of the digest memo file in a cache folder.
MEMO_NAME = ".assay-filedigests"
#: A file changed less than this many seconds before it was hashed is hashed again next time.
RACY_SECONDS = 2.0

_Key = tuple[int, int, int, int, int]

_lock = threading.Lock()
_digests: dict[_Key, bytes] = {}
_attached: dict[str, str] = {}  # folder -> its memo file, loaded into _digests


def _key(info: os.stat_result) -> _Key:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def attach(folder: Path) -> None:
    """Use (and extend) the digest memo of cache folder ``folder`` in this process.

    Cheap after the first call for a folder. A damaged line of the memo is skipped: the
    memo only saves work, and a digest missing from it is computed again.
    """
    name = str(folder)
    if name in _attached:
        return
    memo = os.path.join(name, MEMO_NAME)
    loaded: dict[_Key, bytes] = {}
    try:
        with open(memo, encoding="utf-8") as f:
            for line in f:
                _load_line(line, loaded)
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError:
        return  # unreadable: digests are computed, not remembered across processes
    with _lock:
        _digests.update(loaded)
        _attached[name] = memo


def _load_line(line: str, into: dict[_Key, bytes]) -> None:
    try:
        data = json.loads(line)
        key = tuple(int(data[k]) for k in ("dev", "ino", "size", "mtime_ns", "ctime_ns"))
        digest = bytes.fromhex(data["xxh3"])
    except (ValueError, KeyError, TypeError):
        return
    if len(digest) == 16:
        into[key] = digest  # type: ignore[index]


def _remember(key: _Key, digest: bytes, path: str) -> None:
    with _lock:
        _digests[key] = digest
        memos = list(_attached.values())
    dev, ino, size, mtime_ns, ctime_ns = key
    line = json.dumps(
        {"dev": dev, "ino": ino, "size": size, "mtime_ns": mtime_ns, "ctime_ns": ctime_ns,
         "xxh3": digest.hex(), "path": path},
    ) + "\n"  # fmt: skip
    for memo in memos:
        try:
            # The cache folder may not exist yet: keys are computed before the first entry.
            os.makedirs(os.path.dirname(memo), exist_ok=True)
            # One short append per new digest: concurrent writers interleave whole lines.
            fd = os.open(memo, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError:
            continue  # a read-only folder: the digest is remembered in this process only
        try:
            os.write(fd, line.encode())
        except OSError:
            pass
        finally:
            os.close(fd)


def _hash_file(path: str, size: int) -> bytes:
    if size == 0:
        return xxhash.xxh3_128_digest(b"")
    # Non-blocking: a file swapped for a FIFO since its stat must not hang the open.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"file input {path!r} is no longer a regular file")
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mapped:
            return xxhash.xxh3_128_digest(mapped)
    finally:
        os.close(fd)


def file_digest(path: str, info: os.stat_result | None = None) -> bytes:
    """Return the xxh3-128 digest of the regular file ``path`` (16 bytes), memoised.

    Examples:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile(delete=False) as f:
        ...     _ = f.write(b"data")
        >>> file_digest(f.name) == xxhash.xxh3_128_digest(b"data")
        True

    """
    if info is None:
        info = os.stat(path)
    key = _key(info)
    found = _digests.get(key)
    if found is not None:
        return found
    digest = _hash_file(path, info.st_size)
    after = os.stat(path)
    if _key(after) != key:
        raise RuntimeError(f"file input {path!r} changed while it was being hashed; run again")
    if time.time() - info.st_mtime_ns / 1e9 >= RACY_SECONDS:
        _remember(key, digest, path)
    return digest


def path_digest(path: Path, where: str) -> bytes:
    """Return a digest of what ``path`` holds: a file's bytes, or a directory's tree.

    A directory is keyed by the sorted relative names of everything under it, the kind of
    each (file or folder) and every file's bytes; symbolic links are followed.

    Raises:
        FileNotFoundError: ``path`` does not exist (named in the message).
        ValueError: ``path`` (or something under it) is not a regular file or directory.

    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{where} = {str(path)!r}: no such file or directory; a Path input is keyed by its "
            "content, so it must exist (to key a path by its name, pass it as a str or a "
            "PurePath)"
        ) from None
    if stat.S_ISREG(info.st_mode):
        return b"f" + file_digest(str(path), info)
    if stat.S_ISDIR(info.st_mode):
        return b"d" + _tree_digest(path, where)
    raise ValueError(
        f"{where} = {str(path)!r} is {_kind(info.st_mode)}; expected a regular file or a directory"
    )


def _tree_digest(root: Path, where: str) -> bytes:
    hasher = xxhash.xxh3_128()
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs.sort()
        relative = os.path.relpath(folder, root)
        for name in sorted(files):
            full = os.path.join(folder, name)
            info = os.stat(full)
            entry = os.path.normpath(os.path.join(relative, name)).encode("utf-8", "surrogatepass")
            if not stat.S_ISREG(info.st_mode):
                raise ValueError(
                    f"{where} = {str(root)!r} holds {full!r}, which is {_kind(info.st_mode)}; "
                    "expected only regular files and directories"
                )
            hasher.update(b"f%d:%s" % (len(entry), entry))
            hasher.update(file_digest(full, info))
        for name in dirs:
            entry = os.path.normpath(os.path.join(relative, name)).encode("utf-8", "surrogatepass")
            hasher.update(b"d%d:%s" % (len(entry), entry))
    return hasher.digest()


_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _kind(mode: int) -> str:
    for test, text in _KINDS:
        if test(mode):
            return text
    return "not a regular file"


def forget_memo() -> dict[str, Any]:
    """Drop every digest remembered by this process (for tests and benchmarks).

    Returns:
        What was dropped, as counts.

    """
    with _lock:
        counts = {"digests": len(_digests), "folders": len(_attached)}
        _digests.clear()
        _attached.clear()
    return counts
