"""The class registry of steps: how a config names its Step subclass, and how a dict finds it.

A config names a step class by its short name (``{"type": "Mult"}``), or by its
``module.qualname`` while another live class shares the short name; a list (or a dict of
steps) given for a field typed ``Step`` becomes a chain. Classes are held weakly: one that
nothing uses any more (a script's or an example's) stops counting.
"""

from __future__ import annotations

import inspect
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import pydantic

from ._code import check_pin

if TYPE_CHECKING:
    from ._step import Step

#: Short class name -> {"module.qualname": class}: a config names a step by its short name,
#: and two distinct classes sharing one must not be confused silently.
REGISTRY: dict[str, weakref.WeakValueDictionary[str, type[Step]]] = {}


def register(cls: type[Step]) -> None:
    """Register ``cls`` under its short name and its ``module.qualname``."""
    qualified = f"{cls.__module__}.{cls.__qualname__}"
    REGISTRY.setdefault(cls.__name__, weakref.WeakValueDictionary())[qualified] = cls


def set_up_class(cls: type[Step], root: type[Step]) -> None:
    """Check and register the new Step subclass ``cls``; record what it overrides.

    ``root``: the Step base class itself, whose methods tell what ``cls`` overrides (its
    ``_flags``: it can run, it resolves, its batches are exact, it takes no input).
    """
    key = cls._discriminator_key
    if key in cls.model_fields:
        raise TypeError(
            f"{cls.__name__} has a field {key!r}, which is the key its configurations name "
            f"their class by; rename the field or pass another discriminator_key"
        )
    if not (cls.CACHE_TYPE is None or isinstance(cls.CACHE_TYPE, str)):
        raise TypeError(
            f"{cls.__name__}.CACHE_TYPE={cls.CACHE_TYPE!r}; expected None or a format name"
        )
    register(cls)
    flags = set()
    if (
        cls._run is not root._run
        or cls._run_batch is not root._run_batch
        or (cls._compute_items is not root._compute_items)
    ):
        flags.add("has_run")
    if cls._resolve_step is not root._resolve_step:
        flags.add("has_resolve")
    batch_owner = next(c for c in cls.__mro__ if "_run_batch" in vars(c))
    if batch_owner is root or vars(batch_owner).get("_one_result_per_input", False):
        flags.add("exact_batch")
    params = list(inspect.signature(cls._run).parameters.values())[1:]
    if all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        flags.add("generator")
        if all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in params):
            flags.add("pure_generator")  # no input can reach it, not even an optional one
    cls._flags = frozenset(flags)
    if cls.code_version is not None:
        check_pin(cls.code_version, cls.__name__)


def validate_tagged(
    cls: type[Step], value: Any, handler: pydantic.ValidatorFunctionWrapHandler
) -> Any:
    """Validate ``value`` as ``cls``, dispatching a dict on its discriminator key.

    A list or tuple (or a dict of steps) becomes the chain class of ``cls``'s hierarchy.
    """
    from ._step import Step

    key = cls._discriminator_key
    chain = cls._chain_class
    assert chain is not None, "assay_steps._chain sets Step._chain_class"
    if isinstance(value, (list, tuple)):
        value = {key: type_name(chain), "steps": list(value)}
    elif (
        isinstance(value, dict)
        and value
        and key not in value
        and not set(value) <= set(cls.model_fields)
        and all(isinstance(v, (Step, dict)) for v in value.values())
    ):
        value = {key: type_name(chain), "steps": OrderedDict(value)}
    if not isinstance(value, dict):
        return handler(value)
    if key not in value:
        return _validate_with_hint(cls, value, handler)
    data = dict(value)
    name = data.pop(key)
    if name in (cls.__name__, f"{cls.__module__}.{cls.__qualname__}"):
        target: type[Step] | None = cls  # its own name: no other class is meant
    else:
        target = registered_step(name, key, cls) if isinstance(name, str) else None
    if target is None:
        raise ValueError(
            f"{key}={name!r} is not a registered Step subclass; expected one of "
            f"{sorted(short for short, live in REGISTRY.items() if live)}"
        )
    if not issubclass(target, cls):
        raise ValueError(f"{key}={name!r} is not a subclass of {cls.__name__}")
    if target is cls:
        return _validate_with_hint(cls, data, handler)
    return target.model_validate(data)


def _validate_with_hint(
    cls: type[Step], data: dict[str, Any], handler: pydantic.ValidatorFunctionWrapHandler
) -> Any:
    """Validate ``data`` as ``cls``; when fields it lacks belong to a subclass, say which.

    As exca's hint: ``{"coeff": 3}`` for a field typed ``Step`` most likely forgot its
    ``"type"``, and ``{"type": "Mult", "extra": 1}`` may name the parent of the class meant.
    """
    try:
        return handler(data)
    except pydantic.ValidationError as error:
        unknown = set(data) - set(cls.model_fields)
        having = _subclasses_with_fields(cls, unknown) if unknown else []
        if not having:
            raise
        key = cls._discriminator_key
        raise ValueError(
            f"validation of {cls.__name__!r} failed: it has no field {sorted(unknown)}; you may "
            f"have forgotten to specify the discriminator key {key!r}, or named the wrong "
            f"class: {having} have those fields\n\nOriginal error: {error}"
        ) from error


def _subclasses_with_fields(cls: type[Step], names: set[str]) -> list[str]:
    """Return the names of the live subclasses of ``cls`` that have every field of ``names``."""
    found: set[str] = set()
    todo = list(cls.__subclasses__())
    while todo:
        sub = todo.pop()
        todo.extend(sub.__subclasses__())
        if sub._discriminator_key == cls._discriminator_key and names <= set(sub.model_fields):
            found.add(sub.__name__)
    return sorted(found)


def add_summary_note(error: pydantic.ValidationError, data: dict[str, Any], key: str) -> None:
    """Add to ``error`` a summary naming each failing step and field by its plain path.

    pydantic names the branches of a union in its paths (``steps.list[...].0.coef``) and
    reports every branch that did not match (``Input should be a valid OrderedDict``); the
    summary, as exca's, keeps the real errors under their plain paths (``steps.0.coef``),
    each with the class of the step it is about.
    """
    branch_noise = {"dict_type", "list_type", "ordered_dict_type"}
    lines = []
    noisy = False
    for item in error.errors():
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and "[" in p))
        noisy = noisy or loc != tuple(item["loc"])
        if item["type"] in branch_noise:
            continue
        path = ".".join(str(p) for p in loc)
        step = _step_named_along(data, loc, key)
        first, newline, rest = item["msg"].partition("\n")
        where = f" (step {step})" if step else ""
        lines.append(f"  {path}: {first}{where}{newline}{rest}")
    if noisy and lines and hasattr(error, "add_note"):
        error.add_note("----------\nSummary:\n" + "\n".join(lines))


def _step_named_along(data: Any, loc: tuple[Any, ...], key: str) -> str | None:
    """Return the class named by the innermost step config on the path ``loc`` in ``data``."""
    name = None
    node = data
    for part in loc:
        if part == "steps" and isinstance(node, (list, tuple)):
            continue  # a list given for a step is the steps of a chain
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(node, dict) and REGISTRY.get(node.get(key)):  # type: ignore[arg-type]
            name = node[key]
    return name


def type_name(cls: type[Step]) -> str:
    """Name ``cls`` in a dump so that the dump validates back to ``cls``.

    The short name when no other live class shares it (so configs look as they always did),
    else ``module.qualname``, since the short name would be refused as ambiguous. Only the
    dump depends on this: uids and cache folder names always use the short name.
    """
    name = cls.__name__
    if len(REGISTRY.get(name) or ()) > 1:
        return f"{cls.__module__}.{cls.__qualname__}"
    return name


def registered_step(
    name: str, key: str = "type", base: type[Step] | None = None
) -> type[Step] | None:
    """Find the Step subclass a config names under ``key`` (short name or ``module.qualname``).

    Classes of another hierarchy than ``base`` (one with its own ``discriminator_key``) that
    share the short name do not make it ambiguous.
    """
    if "." in name:
        same_short_name = REGISTRY.get(name.rsplit(".", 1)[1])
        return None if same_short_name is None else same_short_name.get(name)
    candidates = dict(REGISTRY.get(name) or {})
    if base is not None and base._discriminator_key != "type":
        candidates = {q: c for q, c in candidates.items() if issubclass(c, base)} or candidates
    if len(candidates) > 1:
        qualified = sorted(candidates)
        raise ValueError(
            f"{key}={name!r} is ambiguous: the Step subclasses {qualified} share that name; "
            f"give the qualified name instead, e.g. {key}={qualified[0]!r}"
        )
    return next(iter(candidates.values()), None)
