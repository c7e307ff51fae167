"""@operation and OperationWrapper: a plain function that asks only for what it needs."""

from __future__ import annotations

import functools
import hashlib
import inspect
import reprlib
import time
from collections.abc import Callable, Mapping
from typing import Any, overload

from assay_context import FrozenContext
from assay_scope import isolated_base, param_scope

from ._canonical import canonical_digest
from ._capture import Capture
from ._fingerprint import CodeFingerprint, fingerprint
from ._importing import import_module_of
from ._infrastructure import is_infrastructure_error
from ._injection import _arguments, _check_params, _check_types, _injected
from ._provenance import provenance
from ._record import ErrorInfo, RunRecord, Status, _now
from ._runtime import Runtime
from ._seeds import SeedBundle


class OperationWrapper:
    """An operation: a function called with the subset of run values its signature names.

    The function may ask for any of ``context``, ``params``, ``seeds``, ``runtime`` and
    ``capture``, in any order; asking for anything else fails here, at decoration time.
    ``run`` calls it inside ``param_scope(**params)``, so ``@auto_param`` functions deep in the
    code see the run's params, and returns a [`RunRecord`][assay_ops.RunRecord].

    Args:
        func: The function.
        name: The operation's name (defaults to the function's name).

    Examples:
        >>> def square(params, capture):
        ...     capture.metric("y", params["x"] ** 2)
        >>> op = OperationWrapper(square)
        >>> op.run(params={"x": 3}).metric("y")
        9

    """

    def __init__(self, func: Callable[..., Any], name: str | None = None) -> None:
        if not callable(func):
            raise TypeError(f"operation: {func!r} is not callable; expected a function")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"operation name={name!r}: expected a non-empty string")
        self._func = func
        self._name: str = name or str(getattr(func, "__name__", type(func).__name__))
        self._asked = _injected(func, self._name)
        module = getattr(func, "__module__", None) or "__main__"
        self._ref = f"{module}:{getattr(func, '__qualname__', self._name)}"
        self._source_file: str | None = None
        functools.update_wrapper(self, func)

    @property
    def name(self) -> str:
        """The operation's name."""
        return self._name

    @property
    def func(self) -> Callable[..., Any]:
        """The wrapped function."""
        return self._func

    @property
    def parameters(self) -> tuple[str, ...]:
        """The run values the function asks for, in signature order."""
        return self._asked

    @property
    def code_hash(self) -> str:
        """Hash of the code the operation runs (``""`` when the function's source is unavailable).

        The first 16 hex digits of
        [`code_fingerprint`][assay_ops.OperationWrapper.code_fingerprint]'s digest: the function and
        every function, method and class of your own code it reaches, with the constants they read.
        Comments, docstrings, formatting and the function's own decorators do not change it; changes
        to the code do.
        """
        fp = self.code_fingerprint
        root = fp.functions.get(fp.roots[0]) if fp.roots else None
        return "" if root is not None and root.basis == "bytecode" else fp.digest[:16]

    @property
    def code_fingerprint(self) -> CodeFingerprint:
        """The transitive fingerprint of the operation's code (see ``assay_ops.fingerprint``).

        Computed once, then served from memory while the names it resolved are unchanged.
        """
        try:
            return fingerprint(self._func)
        except TypeError:  # a callable object: its class is its code
            return fingerprint(type(self._func))

    def code_report(self) -> str:
        """Return what the code hash covers: the functions reached, and what it cannot follow.

        Examples:
            >>> def double(params, capture):
            ...     capture.metric("y", 2 * params["x"])
            >>> "code fingerprint" in OperationWrapper(double).code_report()
            True

        """
        return self.code_fingerprint.report()

    @property
    def ref(self) -> str:
        """``"module:qualname"``, which ``import_operation`` turns back into this operation."""
        return self._ref

    def provenance(self) -> dict[str, Any]:
        """Return the provenance a run of this operation records now.

        Python, platform, hostname, package versions and the git state of the operation's
        source (commit, dirty flag, address of the diff). Computed once per process and
        kept (the git state is checked again by file times only), so a driver that asks for
        it before starting a pool of forked workers spares each worker its own git calls.

        Examples:
            >>> @operation
            ... def noop():
            ...     pass
            >>> sorted(noop.provenance())[:3]
            ['executable', 'git_commit', 'git_diff']

        """
        return provenance(self._source())

    def _source(self) -> str | None:
        if self._source_file is None:
            try:
                self._source_file = inspect.getsourcefile(self._func) or ""
            except TypeError:
                self._source_file = ""
        return self._source_file or None

    def run(
        self,
        context: FrozenContext | Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        seeds: SeedBundle | None = None,
        runtime: Runtime | None = None,
        capture: Capture | None = None,
        *,
        run_id: str | None = None,
    ) -> RunRecord:
        """Run the operation once and return its record.

        Every argument is optional: params default to ``{}``, seeds to
        ``SeedBundle(DEFAULT_ROOT_SEED, params, replicate=0)``, the runtime to ``Runtime()``,
        the capture to a new ``Capture`` (writing artifact files under
        ``runtime.run_dir / "artifacts"`` when the runtime has a run directory). The function
        sees a child of ``context`` whose metrics and artifacts are the capture's, so what it
        records through either lands in this run's record and the shared context stays as it
        was.

        What the function returns is recorded too: a mapping of metric names to values (the
        ``return {"accuracy": 0.9}`` of a crystallize step) as if ``capture.metric(name,
        value)`` had been called for each item after the function returned, with the same
        checks; a metric also captured during the run gets the returned value appended as
        its last value. If one item is refused, none is recorded and the run fails. ``None``
        records nothing. Any other value gives a ``failed`` record whose ``TypeError`` names
        the operation and the returned type, since a value that would be silently dropped is
        most likely a result the user meant to keep.

        The record's ``params_read`` names every parameter the function read through
        ``param_scope`` (its params, scope values set around the run, defaults of reads that
        found no value, ``@auto_param`` arguments) with the value it got.

        An operation that returns normally after ``capture.should_prune()`` returned True
        (early stopping: the capture's live channel said the run is not worth finishing) gives
        a ``pruned`` record holding the metrics recorded until then, returned ones included.
        An exception raised after it still gives a ``failed`` record (``cancelled`` for
        ``KeyboardInterrupt``).

        An exception raised by the function gives a ``failed`` record carrying the error and
        the metrics captured before it. So does ``SystemExit`` (``sys.exit()`` in a library,
        ``argparse`` refusing its arguments), whatever its code, ``0`` and ``None`` included:
        the body did not run to its end. It is not re-raised, so one run that exits cannot end
        a sweep; the record's error names the operation and the exit code.
        An ``OSError`` saying the storage failed (``ENOSPC``, ``EDQUOT``, ``EIO``, ``EROFS``:
        see ``is_infrastructure_error``), raised by the function or while the capture writes an
        artifact file (the error then names that file), is not the operation's failure: it
        propagates, with no record, so that the run can be done again once the storage is
        fixed. ``KeyboardInterrupt`` gives a ``cancelled`` record, attached to the exception as
        ``run_record``, and is re-raised: Ctrl-C stops a sweep. The scratch directory is
        removed in every case (unless the runtime keeps it).

        The function runs inside ``assay_scope.isolated_base()``: ``param_scope.frozen()``
        called by it publishes the run's values to the threads the run starts, and the base
        is put back as it was when the run ends, however it ends, so later runs and threads of
        the process never see them. The run reads its own copy of the base, so runs in other
        threads that freeze their values at the same time do not reach it; plain threads,
        which read the base of the whole process, can see those (``ScopedThread`` and
        ``bind_scope`` carry the run's own scope instead).

        Args:
            context: Shared read-only state of the experiment: a ``FrozenContext`` (a
                ``LoggingContext`` keeps recording which keys the run read) or a mapping.
            params: This run's parameters (str keys).
            seeds: The run's seed bundle.
            runtime: Directories and resource hints.
            capture: Where metrics, messages and artifacts go.
            run_id: Identifier of the run; by default a hash of the operation's ref and code
                hash, the params digest and the seed key, so the same run gets the same id.

        Examples:
            >>> @operation
            ... def train(capture):
            ...     capture.metric("accuracy", 0.5)
            ...     return {"accuracy": 0.9}
            >>> train.run().metrics
            {'accuracy': [0.5, 0.9]}
            >>> @operation
            ... def exits():
            ...     raise SystemExit(2)
            >>> exits.run().status
            'failed'

        """
        values = _check_params(params)
        _check_types(seeds, runtime, capture, run_id)
        digest: str | None = None
        if seeds is None:
            seeds = SeedBundle(params=values)
            digest = seeds.params_digest  # the same params: no need to encode them twice
        if runtime is None:
            runtime = Runtime()
        else:
            runtime._reopen()  # a runtime passed to several runs gets a scratch folder in each
        if capture is None:
            folder = runtime.run_dir / "artifacts" if runtime.has_run_dir else None
            capture = Capture(artifact_dir=folder)
        capture.remove_stale_temporaries()  # what a killed earlier attempt of the run left
        kwargs = _arguments(self._asked, context, values, seeds, runtime, capture)
        started, clock = _now(), time.perf_counter()
        status: Status = "success"
        error: BaseException | None = None
        read: Mapping[str, Any] = {}
        try:
            # What the function reads through param_scope (its params, scope values around
            # the run, defaults, @auto_param arguments) is recorded, failed runs included.
            # What param_scope.frozen() publishes during the run is withdrawn after it.
            with isolated_base(), param_scope(**values), param_scope.record() as read:
                returned = self._func(**kwargs)
            if returned is not None:
                self._record_returned(returned, capture)
            if capture.pruned:  # told to stop early and returned: not a failure, not a success
                status = "pruned"
        except KeyboardInterrupt as err:
            status, error = "cancelled", err
        except Exception as err:
            if is_infrastructure_error(err):
                raise  # the storage failed (a full disk...), not the operation: no record
            status, error = "failed", err
        except SystemExit as err:
            # A library's sys.exit() or argparse refusing its arguments ends this run, not the
            # process: like any error it gives a failed record and is not re-raised.
            status, error = "failed", err
        finally:
            metrics, tags = capture.metric_series()
            artifacts = capture.artifact_descriptions()
            runtime.cleanup()
        code = self.code_hash  # once per run: checking the fingerprint's memo costs µs
        record = RunRecord(
            run_id=run_id or self._run_id(digest or canonical_digest(values), seeds, code),
            operation=self._name,
            ref=self.ref,
            code_hash=code,
            params=values,
            seed=seeds.key,
            status=status,
            metrics=metrics,
            metric_tags=tags,
            artifacts=artifacts,
            logs=list(capture.logs),
            started_at=started,
            ended_at=_now(),
            duration=time.perf_counter() - clock,
            error=None if error is None else ErrorInfo.of(error, self._name),
            provenance=provenance(self._source()),
            runtime=runtime.to_dict(),
            params_read=dict(read) if read else {},
        )
        if isinstance(error, KeyboardInterrupt):
            error.run_record = record  # type: ignore[attr-defined]
            raise error
        return record

    __call__ = run

    def _record_returned(self, returned: Any, capture: Capture) -> None:
        """Record a returned mapping as metrics, as ``capture.metric`` at the end of the run."""
        if not isinstance(returned, Mapping):
            raise TypeError(
                f"operation {self._name!r} returned a {type(returned).__qualname__} "
                f"({reprlib.repr(returned)}); expected a mapping of metric names to values "
                "(recorded as metrics) or None"
            )
        # Checked on a scratch capture first: one refused entry records none of them, so the
        # failed record does not hold half of what was returned.
        check = Capture()
        for name, value in returned.items():
            try:
                check.metric(name, value)
            except (TypeError, ValueError) as err:
                cls = ValueError if isinstance(err, ValueError) else TypeError
                raise cls(f"operation {self._name!r} returned a refused metric: {err}") from err
        for name, value in returned.items():
            capture.metric(name, value)

    def _run_id(self, digest: str, seeds: SeedBundle, code: str) -> str:
        seed = seeds.key
        text = f"{self._ref}\0{code}\0{digest}\0{seed['root_seed']}\0{seed['replicate']}"
        text += f"\0{seed['path']}\0{seeds.params_digest}"
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]

    def __reduce__(self) -> tuple[Callable[[str], OperationWrapper], tuple[str]]:
        # Pickled by reference, so a worker process imports the operation instead of
        # receiving a copy of its code.
        return (import_operation, (self.ref,))

    def __repr__(self) -> str:
        return f"OperationWrapper({self._name!r}, ref={self.ref!r})"


@overload
def operation(func: Callable[..., Any], *, name: str | None = None) -> OperationWrapper: ...


@overload
def operation(
    func: None = None, *, name: str | None = None
) -> Callable[[Callable[..., Any]], OperationWrapper]: ...


def operation(
    func: Callable[..., Any] | None = None, *, name: str | None = None
) -> OperationWrapper | Callable[[Callable[..., Any]], OperationWrapper]:
    """Turn a function into an [`OperationWrapper`][assay_ops.OperationWrapper].

    Works as ``@operation``, ``@operation()`` and ``@operation(name="custom")``.

    Examples:
        >>> @operation(name="pi")
        ... def estimate_pi(params, seeds, capture):
        ...     xy = seeds.numpy().random((params["n"], 2))
        ...     capture.metric("pi_estimate", 4 * ((xy**2).sum(axis=1) <= 1).mean())
        >>> record = estimate_pi.run(params={"n": 1000})
        >>> record.status, record.operation
        ('success', 'pi')

    """

    def decorate(function: Callable[..., Any]) -> OperationWrapper:
        return OperationWrapper(function, name=name)

    return decorate if func is None else decorate(func)


def import_operation(ref: str) -> OperationWrapper:
    """Import the operation that ``ref`` (``"module:qualname"``) names.

    Raises:
        ValueError: When ``ref`` is not a string of the form ``"module:qualname"``.
        ModuleNotFoundError: When there is no such module.
        ImportError: When the module was found but importing it raised (the message names
            the error and the file and line that raised it), or it exited while it was
            imported (``SystemExit``: a script parsing its command line at import).
        AttributeError: When the module has no such name.
        TypeError: When the name is not an operation.

    Examples:
        ``import_operation("myproject.experiments:train")`` returns the ``train`` operation
        defined in ``myproject/experiments.py``; ``operation.ref`` gives that string.

    """
    if not isinstance(ref, str) or ref.count(":") != 1:
        raise ValueError(
            f"operation reference {ref!r}: expected 'module:qualname' with exactly one colon, "
            "e.g. 'mypackage.experiments:train'"
        )
    module_name, qualname = ref.split(":")
    if not module_name or not qualname:
        raise ValueError(f"operation reference {ref!r}: module and name must both be non-empty")
    target: Any = import_module_of(ref, module_name)
    for part in qualname.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise AttributeError(
                f"operation reference {ref!r}: {module_name!r} has no attribute {qualname!r}"
            ) from None
    if not isinstance(target, OperationWrapper):
        raise TypeError(
            f"operation reference {ref!r} names a {type(target).__qualname__}; "
            "expected a function decorated with @operation"
        )
    return target
