"""Where a step's entries live: its entry store, the code version it serves, its config.json.

A step's cache folder is named by its uid (``Step._step_uid``); under it, a folder per code
version holds the entries (see ``_code.py`` and ``on_code_change``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from ._code import entries_version, old_encoding_message, older_encodings, register
from ._durable import write_atomic
from ._errors import CodeChangedError
from ._filehash import attach as attach_file_digests
from ._paths import StepPaths, mark_cache_folder
from ._registry import type_name
from ._state import runtime_of
from ._store import EntryStore
from ._uid import ENCODING

if TYPE_CHECKING:
    from ._backend import Backend
    from ._step import Step


def store_of(step: Step, prefix: tuple[Step, ...]) -> EntryStore:
    """Return the entry store of ``step`` after the steps ``prefix`` (of a chain)."""
    runtime = runtime_of(step)
    if runtime.pinned is not None and not prefix:
        return runtime.pinned
    infra = step.infra
    if infra is None or infra.folder is None:
        raise RuntimeError(
            f"{type(step).__name__} has infra={infra!r} without a folder; set infra.folder"
        )
    attach_file_digests(infra.folder)  # before any uid: Path fields hash their files
    key = (str(infra.folder), step._step_uid(prefix))
    store = runtime.stores.get(key)
    if store is None or (store.keep_in_ram, store.trust) != (infra.keep_in_ram, infra.trust):
        paths = StepPaths(infra.folder, key[1], _entries_version(step, infra, key, prefix))
        store = EntryStore(
            paths, keep_in_ram=infra.keep_in_ram, fsync=infra.fsync, trust=infra.trust
        )
        store.on_first_write = lambda: _record_folder(step, store, key)
        runtime.stores[key] = store
    return store


def _entries_version(
    step: Step, infra: Backend, key: tuple[str, str], prefix: tuple[Step, ...]
) -> str:
    """Return the code version whose entries ``step`` serves (see ``on_code_change``)."""
    identity = step._code_identity(prefix)
    step_folder = Path(key[0]) / key[1]
    what = f"step {type(step).__name__}"
    version, registered = entries_version(step_folder, identity, infra.on_code_change, what)
    runtime_of(step).codes[key] = identity  # recorded (if it is not yet) when it first writes
    if not registered and infra.on_code_change == "error" and not step_folder.exists():
        name = key[1].rsplit("-", 1)[0]
        old = older_encodings(Path(key[0]), name, ENCODING)
        if old:
            raise CodeChangedError(old_encoding_message(what, old, ENCODING))
    return version


def _record_folder(step: Step, store: EntryStore, key: tuple[str, str]) -> None:
    """Mark the cache folder as assay's and record the code of a new version folder."""
    mark_cache_folder(Path(key[0]), ENCODING)
    # Kept, not taken: a folder removed while the process runs is recorded again.
    identity = runtime_of(step).codes.get(key)
    if identity is not None and identity.version == store.paths.code:
        register(store.paths.step_folder, identity)


def write_config(step: Step, store: EntryStore, prefix: tuple[Step, ...]) -> None:
    """Write the ``config.json`` of ``step``'s cache folder (once: it never changes)."""
    path = store.paths.step_folder / "config.json"
    if store.config_written or path.exists():
        return
    steps = []
    for one in (*prefix, *step._uid_steps()):
        try:
            dumped = one.model_dump(mode="json")
            dumped.pop("infra", None)
            steps.append(dumped)
        except Exception:  # not JSON-able: keep a readable trace of it anyway
            key = type(one)._discriminator_key
            steps.append({key: type_name(type(one)), "repr": repr(one)})
    data = {"step_uid": store.paths.step_uid, "encoding": ENCODING, "steps": steps}
    store.paths.step_folder.mkdir(parents=True, exist_ok=True)
    write_atomic(path, [json.dumps(data, indent=2).encode()], fsync=False)
    store.config_written = True
