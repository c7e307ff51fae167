"""SeedBundle: every run's independent, reproducible random streams."""

from __future__ import annotations

import hashlib
import importlib
import random
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._canonical import canonical_digest

#: The root seed used when none is given. Fixed, so that a run never depends on hidden entropy.
DEFAULT_ROOT_SEED = 0

# Segments of a stream's path below the bundle (see ``SeedBundle._sequence``). Each segment
# starts with a marker and has a fixed length, so a path reads back unambiguously and no two
# purposes share a numpy SeedSequence.
_CHILD, _NAMED, _PYTHON, _INTEGER, _TORCH = 0, 1, 2, 3, 4
_WORD = 2**32


def _check_uint(name: str, value: Any, limit: int) -> int:
    if type(value) is int and 0 <= value < limit:
        return value  # the common case, checked in one step
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"{name}={value!r}: expected a non-negative int, got {type(value).__name__}"
        )
    if not 0 <= value < limit:
        below = f"2**{limit.bit_length() - 1}" if limit.bit_count() == 1 else str(limit)
        raise ValueError(f"{name}={value!r}: expected a non-negative int below {below}")
    return int(value)


def _name_words(name: str) -> tuple[int, ...]:
    if not isinstance(name, str) or not name:
        raise ValueError(f"name={name!r}: expected a non-empty string naming the stream")
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "big") for i in range(0, 16, 4))


class SeedBundle:
    """The random streams of one run, derived from (root seed, canonical params, replicate).

    The bundle wraps a ``numpy.random.SeedSequence`` whose entropy is the root seed and
    whose spawn key is the SHA-256 digest of the params' canonical encoding followed by the
    replicate index. Runs that differ in any of the three get statistically independent
    streams; the same triple gives the identical streams in every process on every machine.
    Nothing is drawn until a generator is asked for, and every call returns a generator at the
    start of its stream (keep the generator to continue a stream).

    Args:
        root_seed: Non-negative int below 2**128; defaults to ``DEFAULT_ROOT_SEED`` (0).
        params: The run's parameters (see ``canonical_digest`` for the supported types).
        replicate: Non-negative replicate index below 2**32.

    Examples:
        >>> seeds = SeedBundle(42, {"lr": 0.1}, replicate=0)
        >>> a = seeds.numpy().random()
        >>> a == SeedBundle(42, {"lr": 0.1}, replicate=0).numpy().random()
        True
        >>> a == SeedBundle(42, {"lr": 0.1}, replicate=1).numpy().random()
        False

    """

    __slots__ = ("_digest", "_key", "_path", "_replicate", "_root", "_seq")

    def __init__(
        self,
        root_seed: int = DEFAULT_ROOT_SEED,
        params: Mapping[str, Any] | None = None,
        replicate: int = 0,
    ) -> None:
        digest = canonical_digest({} if params is None else params)
        self._setup(_check_uint("root_seed", root_seed, 2**128), digest, replicate, ())

    def _setup(self, root: int, digest: str, replicate: int, path: tuple[int, ...]) -> None:
        self._root = root
        self._digest = digest
        self._replicate = _check_uint("replicate", replicate, _WORD)
        self._path = path
        self._key: tuple[int, ...] | None = None  # built on first use: most runs never need it
        self._seq: np.random.SeedSequence | None = None

    @classmethod
    def from_key(cls, key: Mapping[str, Any]) -> SeedBundle:
        """Rebuild a bundle from its ``key`` (as stored in a run record).

        Raises:
            ValueError: When a field of the key is missing or malformed.

        """
        try:
            root, digest, replicate = key["root_seed"], key["params_digest"], key["replicate"]
            path = tuple(int(p) for p in key.get("path", ()))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(
                f"seed key {dict(key)!r}: expected root_seed, params_digest, replicate "
                f"and an optional path ({err})"
            ) from err
        hex_digits = isinstance(digest, str) and len(digest) == 64
        if not hex_digits or not set(digest.lower()) <= set("0123456789abcdef"):
            raise ValueError(f"params_digest={digest!r}: expected 64 hex digits")
        for step in path:
            _check_uint("path element", step, _WORD)
        bundle = cls.__new__(cls)
        bundle._setup(_check_uint("root_seed", root, 2**128), digest.lower(), replicate, path)
        return bundle

    @property
    def entropy(self) -> int:
        """The root seed: the entropy of the underlying ``numpy.random.SeedSequence``."""
        return self._root

    @property
    def root_seed(self) -> int:
        """The root seed (same as ``entropy``)."""
        return self._root

    @property
    def replicate(self) -> int:
        """The replicate index."""
        return self._replicate

    @property
    def replicate_index(self) -> int:
        """The replicate index, under the reference library's name."""
        return self._replicate

    @property
    def params_digest(self) -> str:
        """SHA-256 hex digest of the params' canonical encoding."""
        return self._digest

    @property
    def spawn_key(self) -> tuple[int, ...]:
        """The spawn key of the underlying ``numpy.random.SeedSequence``."""
        if self._key is None:
            words = struct.unpack(">8I", bytes.fromhex(self._digest))
            self._key = (*words, self._replicate, *self._path)
        return self._key

    @property
    def key(self) -> dict[str, Any]:
        """A JSON-serialisable description that ``from_key`` turns back into this bundle."""
        return {
            "root_seed": self._root,
            "params_digest": self._digest,
            "replicate": self._replicate,
            "path": list(self._path),
        }

    @property
    def seed_sequence(self) -> np.random.SeedSequence:
        """The bundle's ``numpy.random.SeedSequence`` (built on first use)."""
        if self._seq is None:
            self._seq = np.random.SeedSequence(self._root, spawn_key=self.spawn_key)
        return self._seq

    def _sequence(self, name: str | None, *purpose: int) -> np.random.SeedSequence:
        if name is None and not purpose:
            return self.seed_sequence
        named = () if name is None else (_NAMED, *_name_words(name))
        return np.random.SeedSequence(self._root, spawn_key=(*self.spawn_key, *named, *purpose))

    def numpy(self, name: str | None = None) -> np.random.Generator:
        """Return a ``numpy.random.Generator`` (PCG64) at the start of the bundle's stream.

        Args:
            name: Optional name of an independent sub-stream (e.g. ``"init"``, ``"noise"``),
                so that adding draws to one part of the code leaves the others unchanged.

        Examples:
            >>> rng = SeedBundle(0).numpy()
            >>> 0.0 <= rng.random() < 1.0
            True

        """
        return np.random.Generator(np.random.PCG64(self._sequence(name)))

    def python(self, name: str | None = None) -> random.Random:
        """Return a ``random.Random`` seeded from its own stream of the bundle.

        Examples:
            >>> SeedBundle(0).python().random() == SeedBundle(0).python().random()
            True

        """
        state = self._sequence(name, _PYTHON).generate_state(8, np.uint32)
        return random.Random(int.from_bytes(state.astype(">u4").tobytes(), "big"))

    def integer(self, name: str | None = None, *, bits: int = 32) -> int:
        """Return a reproducible integer seed for libraries that want one.

        Args:
            name: Optional name of an independent sub-stream.
            bits: 32 (the default; accepted by every library) or 64.

        Examples:
            >>> 0 <= SeedBundle(0).integer() < 2**32
            True

        """
        if bits not in (32, 64):
            raise ValueError(f"bits={bits!r}: expected 32 or 64")
        dtype = np.uint32 if bits == 32 else np.uint64
        return int(self._sequence(name, _INTEGER).generate_state(1, dtype)[0])

    def spawn(self, n: int) -> list[SeedBundle]:
        """Return ``n`` child bundles with independent streams.

        Unlike ``SeedSequence.spawn``, this is stateless: ``spawn(n)`` always returns the same
        children 0..n-1, so the streams do not depend on how often it was called before.

        Examples:
            >>> a, b = SeedBundle(0).spawn(2)
            >>> a.numpy().random() != b.numpy().random()
            True

        """
        count = _check_uint("n", n, _WORD)
        children = []
        for i in range(count):
            child = SeedBundle.__new__(SeedBundle)
            child._setup(self._root, self._digest, self._replicate, (*self._path, _CHILD, i))
            children.append(child)
        return children

    def torch(self, name: str | None = None) -> Any:
        """Return a ``torch.Generator`` seeded from its own stream of the bundle.

        torch is optional: it is imported only here.

        Raises:
            ImportError: When torch is not installed.

        """
        try:
            torch = importlib.import_module("torch")  # optional: imported on use only
        except ImportError as err:
            raise ImportError(
                "SeedBundle.torch() needs PyTorch, which is not installed; "
                "install it (pip install torch) or use seeds.numpy() / seeds.integer()"
            ) from err
        seed = int(self._sequence(name, _TORCH).generate_state(1, np.uint64)[0])
        return torch.Generator().manual_seed(seed)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SeedBundle):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def _identity(self) -> tuple[Any, ...]:
        return (self._root, self._digest, self._replicate, self._path)

    def __getstate__(self) -> dict[str, Any]:
        return self.key

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._setup(
            state["root_seed"], state["params_digest"], state["replicate"], tuple(state["path"])
        )

    def __repr__(self) -> str:
        return (
            f"SeedBundle(root_seed={self._root}, params_digest={self._digest[:12]}…, "
            f"replicate={self._replicate}, path={self._path})"
        )
