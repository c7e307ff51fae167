"""Code versions of a step's cache: which code wrote the entries, and what a change does.

A step folder (one configuration) holds one ``code-<version>/`` folder per version of the
code that computed entries there. The version is a fingerprint of the code of every step the
entries depend on (a chain's step ``k`` depends on steps ``0..k``), or the version a class
pins by hand (``code_version = "2"``). ``code-<version>/code.json`` says what that code was:
the fingerprint's functions with their files and lines, or that the version is pinned, and
whether the version serves another version's entries (``"keeps"``: the user chose to keep
them when the code changed).

When the code changed, the cache never answers silently: ``on_code_change`` chooses between
``"error"`` (the default, naming what changed), ``"rerun"`` (compute again in a new version
folder; the old one stays until pruned) and ``"keep"`` (serve the old entries; remembered).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import xxhash
from assay_ops import CodeFingerprint

from ._durable import write_atomic
from ._errors import CodeChangedError
from ._paths import CODE_FILE, StepPaths, check_name, read_record

CodePolicy = Literal["error", "rerun", "keep"]
CODE_POLICIES: tuple[str, ...] = ("error", "rerun", "keep")
CODE_FORMAT = "assay-code-1"

#: One part per step the entries depend on: the version it pins (or None) and the fingerprint
#: of its code (None when pinned).
CodeParts = tuple[tuple[str | None, CodeFingerprint | None], ...]


@dataclasses.dataclass(frozen=True)
class CodeIdentity:
    """The code behind a step's entries: the version that names its folder, and what it is.

    Attributes:
        version: The name of its ``code-<version>`` folder.
        fingerprint: The fingerprint of the steps' code (None when every step pins a version).
        pins: The versions pinned by hand, in step order.

    """

    version: str
    fingerprint: CodeFingerprint | None
    pins: tuple[str, ...]

    def describe(self) -> dict[str, Any]:
        """Return what ``code.json`` records of this code."""
        return {
            "format": CODE_FORMAT,
            "version": self.version,
            "pinned": list(self.pins) or None,
            "fingerprint": None if self.fingerprint is None else self.fingerprint.to_dict(),
        }


# Fingerprints hold names, not objects: nothing here keeps a class alive (a notebook's
# redefined step class must be free to go, as the step registry expects).
_identities: dict[CodeParts, CodeIdentity] = {}


def code_identity(parts: CodeParts) -> CodeIdentity:
    """Return the code identity of entries computed by steps with these ``parts`` (memoised).

    Examples:
        >>> code_identity((("2", None),)).version
        'v2'

    """
    key = parts  # fingerprints compare by digest and by the files and lines they name
    found = _identities.get(key)
    if found is not None:
        return found
    pins = tuple(pin for pin, _ in parts if pin is not None)
    prints = [fp for pin, fp in parts if pin is None and fp is not None]
    fp = merge(prints) if prints else None
    if fp is None and len(pins) == 1:
        version = f"v{pins[0]}"
    else:
        text = "\0".join([fp.digest if fp is not None else "", *pins])
        version = xxhash.xxh3_64_hexdigest(text.encode())
    identity = CodeIdentity(version, fp, pins)
    _identities[key] = identity
    return identity


def merge(prints: Sequence[CodeFingerprint]) -> CodeFingerprint:
    """Return one fingerprint covering the code of several steps (a chain's steps ``0..k``)."""
    if len(prints) == 1:
        return prints[0]
    functions: dict[str, Any] = {}
    constants: dict[str, str] = {}
    for fp in prints:
        functions.update(fp.functions)
        constants.update(fp.constants)
    digest = xxhash.xxh3_128_hexdigest("\0".join(fp.digest for fp in prints).encode())
    return CodeFingerprint(
        digest=digest,
        functions=functions,
        unresolved=tuple(sorted({u for fp in prints for u in fp.unresolved})),
        constants=constants,
        roots=tuple(root for fp in prints for root in fp.roots),
        python=prints[0].python,
    )


def check_pin(value: object, owner: str) -> str:
    """Return the ``code_version`` a class pins, checked to be usable in a folder name."""
    if not isinstance(value, str):
        raise TypeError(f"{owner}.code_version = {value!r}; expected a str such as '1' or None")
    return check_name(value, f"{owner}.code_version")


def register(step_folder: Path, identity: CodeIdentity, keeps: str | None = None) -> None:
    """Record ``identity`` in its version folder (once; the first record stays)."""
    folder = step_folder / f"code-{identity.version}"
    path = folder / CODE_FILE
    if path.exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    data = {**identity.describe(), "created": now, "keeps": keeps}
    write_atomic(path, [json.dumps(data, indent=2).encode()], fsync=False)


def entries_version(
    step_folder: Path, identity: CodeIdentity, policy: str, what: str
) -> tuple[str, bool]:
    """Return the version whose entries this code serves, and whether it is registered.

    Raises:
        CodeChangedError: other code wrote entries in ``step_folder`` and ``policy`` is
            ``"error"``.

    """
    own = _served_by(step_folder, identity)
    if own is not None:
        return own, True
    others = StepPaths(step_folder.parent, step_folder.name).code_versions()
    if not others:
        return identity.version, False  # registered when it first writes
    if any(data.get("version") == identity.version for data in others):
        # Registered meanwhile by another process running this very code.
        return _served_by(step_folder, identity) or identity.version, True
    newest = others[-1]
    if policy == "rerun" or identity.fingerprint is None:
        # A version pinned by hand changes only when the user bumps it: that is the decision.
        register(step_folder, identity)
        return identity.version, True
    if policy == "keep":
        kept = newest.get("keeps") or newest.get("version")
        target = check_name(str(kept), f"{step_folder} code version")
        register(step_folder, identity, keeps=target)
        return target, True
    raise CodeChangedError(f"{what}: {describe_change(newest, identity, step_folder)}")


# code.json files read in this process: path -> (inode, mtime, the version it serves). A
# record is written once and never changed: a stat tells that the file read is still there.
_served: dict[str, tuple[int, int, str]] = {}


def _served_by(step_folder: Path, identity: CodeIdentity) -> str | None:
    """Return the version whose entries a registered ``identity`` serves, None if unregistered."""
    path = os.path.join(step_folder, f"code-{identity.version}", CODE_FILE)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    known = _served.get(path)
    if known is not None and known[:2] == (info.st_ino, info.st_mtime_ns):
        return known[2]
    own = read_record(Path(path))
    if own is None:
        return None
    keeps = own.get("keeps")
    version = identity.version
    if isinstance(keeps, str) and keeps:
        version = check_name(keeps, f"{step_folder}/code-{identity.version} keeps")
    _served[path] = (info.st_ino, info.st_mtime_ns, version)
    return version


def describe_change(old: dict[str, Any], new: CodeIdentity, step_folder: Path) -> str:
    """Say what changed between the code that wrote entries and ``new``, function by function."""
    where = f"its cache entries in {step_folder} were computed by other code"
    old_print = old.get("fingerprint")
    if new.fingerprint is None or not isinstance(old_print, dict):
        return f"{where} (code version {old.get('version')!r}, now {new.version!r})"
    try:
        lines = new.fingerprint.changes(CodeFingerprint.from_dict(old_print))
    except (KeyError, TypeError, ValueError):
        lines = []
    if not lines:  # same functions, other pins or constants
        return f"{where} (code version {old.get('version')!r}, now {new.version!r})"
    return f"{where}: {'; '.join(lines)}"


def older_encodings(base_folder: Path, class_name: str, encoding: int) -> list[Path]:
    """Return the folders of ``class_name`` in ``base_folder`` written by an older uid encoding."""
    found = []
    for folder in base_folder.glob(f"{class_name}-*"):
        config = read_record(folder / "config.json")
        if config is None:
            continue
        if config.get("encoding", 2) != encoding:
            found.append(folder)
    return sorted(found)


def old_encoding_message(what: str, folders: Sequence[Path], encoding: int) -> str:
    """Explain that ``folders`` hold entries an older assay wrote under other uids."""
    names = ", ".join(os.fspath(f) for f in folders[:3]) + (" ..." if len(folders) > 3 else "")
    return (
        f"{what}: {len(folders)} cache folder(s) of this step were written by an older version "
        f"of assay (uid encoding 2, now {encoding}), whose entries this version cannot find "
        f"({names})"
    )
