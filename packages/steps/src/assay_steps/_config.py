"""A step's configuration: what enters its uids, what it resolves to, and how it is edited.

The uid of a step is the hash of the canonical encoding of its class and of the fields that
make its identity (``uid_fields``: neither ``infra`` nor fields at their default); a step that
resolves to another (``_resolve_step``) runs, and is keyed, as what it resolves to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._backend import Backend
from ._paths import safe_item_uid
from ._state import NOINPUT_UID, NOVALUE, runtime_of
from ._tree import holds
from ._uid import uid_of

if TYPE_CHECKING:
    from ._step import Step

#: Longest step class name: with "-<32 hex digits>" the folder name stays under 255 bytes.
_MAX_CLASS_NAME = 120


def uid_fields(step: Step) -> dict[str, Any]:
    """Return the fields of ``step`` that make its identity (the body of ``_uid_fields``)."""
    fields = type(step).model_fields
    excluded = {"infra", *step._exclude_from_cls_uid()}
    unknown = excluded - set(fields)
    if unknown:  # a typo would leave the intended field in the uid without a word
        name = type(step).__name__
        raise ValueError(
            f"{name}._exclude_from_cls_uid() names {sorted(unknown)}, which are not fields "
            f"of {name}; expected some of {sorted(set(fields) - {'infra'})}"
        )
    out = {}
    for name, info in fields.items():
        if name in excluded:
            continue
        value = getattr(step, name)
        if info.default_factory is None and _same(value, info.default):
            continue  # adding a field with a default keeps existing uids
        out[name] = value
    return out


def item_uid(step: Step, value: Any) -> str:
    """Return the uid of the input ``value`` of ``step`` (the body of ``Step._item_uid``)."""
    custom = step.item_uid(value)
    if custom is not None:
        if value is NOVALUE and not step._is_pure_generator():
            name = type(step).__name__
            raise TypeError(
                f"{name}.item_uid returned {custom!r} without an input, but {name}._run "
                "accepts an optional input: its results with and without an input would "
                "share uids; expected item_uid to return None without an input, or a _run "
                "taking no input"
            )
        return safe_item_uid(custom, f"{type(step).__name__}.item_uid({value!r:.60})")
    if value is NOVALUE:
        return NOINPUT_UID
    return uid_of(value, "input value")


def step_uid(step: Step, prefix: tuple[Step, ...]) -> str:
    """Return the uid of ``step`` after the steps ``prefix``: its cache folder's name."""
    steps = (*prefix, *step._uid_steps())
    digest = uid_of(steps, "step config")  # the same uid as an input's: one encoder, one hash
    name = type(steps[-1]).__name__
    # The class name becomes a folder name; type() accepts any string ("../x", "a/b").
    if not name.isidentifier() or len(name) > _MAX_CLASS_NAME:
        raise ValueError(
            f"step class name {name!r} cannot name a cache folder: expected a Python "
            f"identifier of at most {_MAX_CLASS_NAME} characters"
        )
    return f"{name}-{digest}"


def resolved(step: Step) -> Step:
    """Return the step ``step`` runs as: the fixed point of ``_resolve_step()``."""
    if "has_resolve" not in step._flags:
        return step
    current: Step = step
    for _ in range(32):
        following = current._resolve_step()
        if following is current:
            break
        current = following
    else:
        raise RuntimeError(f"{type(step).__name__}._resolve_step does not reach a fixed point")
    if current is step:
        return step
    runtime = runtime_of(step)
    # Resolved again on every use, since the configuration may have changed since; an
    # equal resolution is the one already in use, with what it remembers.
    if runtime.resolution is not None and _same_config(runtime.resolution, current):
        return runtime.resolution
    if holds(current, step):
        raise RuntimeError(
            f"{type(step).__name__}._resolve_step returned a step containing the step "
            "itself, which would resolve again without end; expected a step built from "
            "copies, e.g. self.model_copy(update=...) with the field that resolves emptied"
        )
    runtime.resolution = current
    return current


def fill_infra_from_default(step: Step) -> None:
    """Copy into ``step.infra`` the fields its class's default infra sets and it does not."""
    # As in exca: a class whose infra default sets fields (e.g. a folder) keeps them when
    # a config overrides only some fields of infra (e.g. {"backend": "Cached", "mode": ...}).
    default = type(step).model_fields["infra"].default
    infra = step.infra
    if not isinstance(default, Backend) or infra is None:
        return
    for name in default.model_fields_set & set(type(infra).model_fields):
        if name not in infra.model_fields_set:
            setattr(infra, name, getattr(default, name))


def cloned_data(step: Step, dicts: tuple[dict[str, Any], ...], kwargs: Any) -> dict[str, Any]:
    """Return the dump of ``step`` with the updates of ``Step.clone`` applied."""
    if len(dicts) > 1:
        raise ValueError(
            f"clone got {len(dicts)} dicts of updates {list(dicts)}; expected one dict "
            "(merge them: which one wins a shared key would be a guess)"
        )
    twice = sorted(set(kwargs) & set(dicts[0])) if dicts else []
    if twice:
        raise ValueError(
            f"clone got {twice[0]!r} both in the dict ({dicts[0][twice[0]]!r}) and as a "
            f"keyword argument ({kwargs[twice[0]]!r}); expected each key once"
        )
    data = step.model_dump()
    for update in (*dicts, kwargs):
        for key, value in update.items():
            target: dict[str, Any] | list[Any] = data
            *parents, last = key.split(".")
            for part in parents:
                child = _clone_slot(target, part, key)[1]
                if not isinstance(child, (dict, list)):
                    raise KeyError(f"clone key {key!r}: {part!r} is not a nested config")
                target = child
            slot = _clone_slot(target, last, key)[0]
            target[slot] = value
    return data


def _clone_slot(container: dict[str, Any] | list[Any], part: str, key: str) -> tuple[Any, Any]:
    """Return where ``part`` of the dotted clone key ``key`` points in ``container``, and what.

    A list (e.g. the steps of a chain) is indexed by number, as in exca (``"steps.0.coeff"``).
    """
    if isinstance(container, list):
        if not (part.isdigit() and int(part) < len(container)):
            raise KeyError(
                f"clone key {key!r}: {part!r} is not an index of a list of {len(container)} "
                f"item(s); expected a number below {len(container)}"
            )
        return int(part), container[int(part)]
    return part, container.get(part)


def _same_config(one: Step, other: Step) -> bool:
    try:
        return type(one) is type(other) and bool(one == other)
    except Exception:  # e.g. array fields: no truth value, so never "the same"
        return False


def _same(value: Any, default: Any) -> bool:
    try:
        return type(value) is type(default) and bool(value == default)
    except Exception:  # e.g. arrays: ambiguous truth value, so never "equal to the default"
        return False
