"""RunRecord: what happened in one run, serialisable to JSON and back without loss."""

from __future__ import annotations

import dataclasses
import datetime
import json
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from ._jsonvalue import from_json, to_json, write_atomic

#: Format tag written into every serialised record; readers refuse other formats.
RECORD_FORMAT = "assay.run-record/1"

#: The statuses a run can end with. ``pruned``: the operation returned early because
#: ``capture.should_prune()`` told it to (early stopping); its metrics are those recorded so far.
STATUSES = ("success", "failed", "cancelled", "pruned")

Status = Literal["success", "failed", "cancelled", "pruned"]

# Fields whose values may hold any record value (numpy scalars, arrays, tuples, ...); the
# others are plain JSON already.
_RICH = ("params", "metrics", "metric_tags", "artifacts")


@dataclasses.dataclass
class ErrorInfo:
    """The exception that ended a failed or cancelled run.

    Attributes:
        type: Qualified name of the exception class, e.g. ``"builtins.ValueError"``.
        message: ``str()`` of the exception.
        traceback: The formatted traceback.

    """

    type: str
    message: str
    traceback: str

    @classmethod
    def of(cls, error: BaseException, operation: str | None = None) -> ErrorInfo:
        """Describe ``error`` as a record holds it: class, message and traceback.

        A ``SystemExit`` raised by ``operation`` says so, with its code (its own text is just
        the code).

        Examples:
            >>> info = ErrorInfo.of(ValueError("lr = -1; expected a positive float"))
            >>> info.type, info.message
            ('builtins.ValueError', 'lr = -1; expected a positive float')

        """
        cls_ = type(error)
        message = str(error)
        if isinstance(error, SystemExit) and operation is not None:
            # str(SystemExit(2)) is just "2": say what happened and where.
            message = (
                f"operation {operation!r} raised SystemExit with code {error.code!r} "
                "(sys.exit() or an argparse error inside the operation)"
            )
        return cls(
            type=f"{cls_.__module__}.{cls_.__qualname__}",
            message=message,
            traceback="".join(traceback.format_exception(cls_, error, error.__traceback__)),
        )


@dataclasses.dataclass(eq=False)
class RunRecord:
    """The record of one run of an operation.

    Attributes:
        run_id: Identifier of the run (by default derived from the operation's ref and code
            hash and the seed key, so the same run gets the same id).
        operation: The operation's name.
        ref: ``"module:qualname"`` of the operation.
        code_hash: Hash of the operation's code and of the user code it reaches (see
            ``OperationWrapper.code_hash``; ``""`` when the source is unavailable).
        params: The run's parameters.
        seed: The seed bundle's key (``SeedBundle.from_key`` rebuilds the bundle).
        status: ``"success"``, ``"failed"``, ``"cancelled"`` or ``"pruned"`` (stopped early
            when ``capture.should_prune()`` said so: the metrics are those recorded until
            then; a reader of an older version refuses such a record).
        metrics: Metric name → values in recording order.
        metric_tags: Metric name → the tags dict recorded with each value.
        artifacts: Descriptions of the captured artifacts, in order.
        logs: Messages passed to ``Capture.log``, in order.
        started_at: Start time, ISO 8601 in UTC.
        ended_at: End time, ISO 8601 in UTC.
        duration: Wall-clock duration in seconds (monotonic clock).
        error: The exception that ended the run, or ``None`` after a success.
        provenance: Python version, platform, hostname, package versions, git commit, whether
            the work tree had uncommitted changes (``git_dirty``) and their content address
            (``git_diff``).
        runtime: Backend name, resource hints and run directory.
        params_read: The parameters the run read through ``param_scope`` (its own params,
            scope values around it, defaults of reads that found no value, ``@auto_param``
            arguments): name → value read. ``{}`` in records written before it existed. A
            value a record cannot hold is written as its ``repr()``.

    """

    run_id: str
    operation: str
    ref: str
    code_hash: str
    params: dict[str, Any]
    seed: dict[str, Any]
    status: Status
    metrics: dict[str, list[Any]]
    metric_tags: dict[str, list[dict[str, Any]]]
    artifacts: list[dict[str, Any]]
    logs: list[str]
    started_at: str
    ended_at: str
    duration: float
    error: ErrorInfo | None
    provenance: dict[str, Any]
    runtime: dict[str, Any]
    params_read: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status={self.status!r}: expected one of {STATUSES}")

    def __eq__(self, other: object) -> bool:
        # Compared through the lossless JSON form, so records holding numpy arrays or NaN
        # compare by content (field-by-field ``==`` would be ambiguous for arrays).
        if not isinstance(other, RunRecord):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    @property
    def replicate(self) -> int:
        """The replicate index of the run."""
        return int(self.seed["replicate"])

    @property
    def ok(self) -> bool:
        """Whether the run succeeded (ran to its end: a pruned run is not ``ok``)."""
        return self.status == "success"

    @property
    def pruned(self) -> bool:
        """Whether the run was stopped early because ``capture.should_prune()`` said so."""
        return self.status == "pruned"

    def metric(self, name: str) -> Any:
        """Return the last value recorded for metric ``name``.

        Raises:
            KeyError: When no such metric was recorded; the message lists those that were.

        """
        try:
            return self.metrics[name][-1]
        except (KeyError, IndexError):
            raise KeyError(
                f"metric {name!r} was not recorded in run {self.run_id}; "
                f"recorded: {sorted(self.metrics)}"
            ) from None

    def to_dict(self, array_dir: str | Path | None = None) -> dict[str, Any]:
        """Return a JSON-serialisable dict that ``from_dict`` turns back into this record.

        Args:
            array_dir: Where to write numpy arrays as ``.npy`` files, referenced by name from
                the dict; ``None`` keeps them inline (base64).

        """
        folder = None if array_dir is None else Path(array_dir)
        data: dict[str, Any] = {"format": RECORD_FORMAT}
        for name in _FIELDS:
            value = getattr(self, name)
            if name in _RICH:
                value = to_json(value, name, folder)
            elif name == "params_read":
                value = _reads_json(value, folder)
            elif name == "error" and value is not None:
                value = dataclasses.asdict(value)
            data[name] = value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], array_dir: str | Path | None = None) -> RunRecord:
        """Rebuild a record from ``to_dict``'s output.

        A record without ``params_read`` (written before the field existed) loads with ``{}``.

        Raises:
            ValueError: When the format is not ``RECORD_FORMAT`` or a field is missing.

        """
        if data.get("format") != RECORD_FORMAT:
            raise ValueError(
                f"format={data.get('format')!r}: expected a run record of format {RECORD_FORMAT!r}"
            )
        folder = None if array_dir is None else Path(array_dir)
        missing = [name for name in _REQUIRED if name not in data]
        if missing:
            raise ValueError(f"run record is missing the field(s) {missing}")
        values = {name: data[name] for name in _REQUIRED}
        for name in _RICH:
            values[name] = from_json(values[name], folder)
        values["params_read"] = from_json(data.get("params_read", {}), folder)
        if values["error"] is not None:
            values["error"] = ErrorInfo(**values["error"])
        return cls(**values)

    def to_json(self, array_dir: str | Path | None = None, *, indent: int | None = 2) -> str:
        """Return the record as a JSON string (see ``to_dict``).

        Args:
            array_dir: As for ``to_dict``.
            indent: Spaces per level; ``None`` gives compact one-line JSON, several times
                faster to write (what an experiment stores for each run).

        """
        data = self.to_dict(array_dir)
        if indent is not None:
            return json.dumps(data, indent=indent, allow_nan=False)
        # Provenance is the same for every run of a process: its text is encoded once.
        provenance, runtime = data.pop("provenance"), data.pop("runtime")
        head, tail = _compact(data)[:-1], _compact(runtime)
        return f'{head},"provenance":{_provenance_json(provenance)},"runtime":{tail}}}'

    @classmethod
    def from_json(cls, text: str, array_dir: str | Path | None = None) -> RunRecord:
        """Rebuild a record from ``to_json``'s output."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(
                f"expected a JSON object holding a run record, got {type(data).__name__}"
            )
        return cls.from_dict(data, array_dir)

    def save(self, folder: str | Path) -> Path:
        """Write the record to ``folder/record.json``, arrays beside it; return the file's path.

        The file is written to a temporary name, flushed and renamed, so a reader never sees a
        partial record.
        """
        directory = Path(folder)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "record.json"
        write_atomic(path, self.to_json(directory / "arrays").encode("utf-8"))
        return path

    @classmethod
    def load(cls, folder: str | Path) -> RunRecord:
        """Read a record written by ``save``."""
        directory = Path(folder)
        return cls.from_json((directory / "record.json").read_text("utf-8"), directory / "arrays")


# The field names, read once (dataclasses.fields costs more than a run), in the order of the
# JSON form: params_read beside params, provenance and runtime last (as compact JSON has them).
_FIELDS = tuple(
    name
    for field in dataclasses.fields(RunRecord)
    if field.name != "params_read"
    for name in ((field.name, "params_read") if field.name == "params" else (field.name,))
)
# Fields every stored record has; the others were added later and have defaults.
_REQUIRED = tuple(name for name in _FIELDS if name != "params_read")


def _reads_json(reads: dict[str, Any], folder: Path | None) -> Any:
    """Return the JSON form of ``params_read``; a value a record cannot hold becomes its repr.

    What a run read through ``param_scope`` may be any object (a model, a callable): it must
    not make the record, and so the run, fail.
    """
    try:
        return to_json(reads, "params_read", folder)
    except TypeError:
        kept = {}
        for key, value in reads.items():
            try:
                to_json(value, f"params_read[{key!r}]")
            except TypeError:
                text = repr(value)
                value = text if len(text) <= 1000 else text[:997] + "..."
            kept[key] = value
        return to_json(kept, "params_read", folder)


def _compact_encoder() -> Callable[[Any], str]:
    """Return a compact JSON encoder; the C one is made once instead of once per call."""
    encoder = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - Python without the C accelerator
        return encoder.encode
    # The arguments JSONEncoder.iterencode passes (unchanged from Python 3.10 to 3.13); no
    # markers: records are trees, built by to_dict.
    iterencode = make(
        None, encoder.default, json.encoder.encode_basestring_ascii, None, ":", ",",
        False, False, False,
    )  # fmt: skip

    def encode(value: Any) -> str:
        return "".join(iterencode(value, 0))

    return encode


_compact = _compact_encoder()
_last_provenance: tuple[Any, str] = (None, "null")


def _provenance_json(provenance: Any) -> str:
    """Return the compact JSON of ``provenance``, reusing the last text for an equal value."""
    global _last_provenance
    last, text = _last_provenance
    if provenance != last:
        text = _compact(provenance)
        _last_provenance = (provenance, text)
    return text


# ---------------------------------------------------------------------- building a record

_UTC = datetime.timezone.utc
_clock = datetime.datetime.now


def _now() -> str:
    return _clock(_UTC).isoformat()  # names bound once: twice per run, it shows
