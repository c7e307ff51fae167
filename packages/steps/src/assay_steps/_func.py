"""Func: a plain function as a Step."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pydantic

from ._state import NOVALUE
from ._step import Step


def _import_path(function: Callable[..., Any]) -> str:
    return f"{function.__module__}.{function.__qualname__}"


class Func(Step):
    """Wrap a plain function (or a ``"module.attr"`` import path) as a Step.

    The input parameter is the one named by ``input_param``, or else auto-detected: the
    single parameter without a default (a generator step when all have defaults; an error
    when two or more have none). Other keyword arguments are fixed arguments of the
    function, validated against its signature; they are part of the cache uid.

    Args:
        function: A module-level function, or its import path.
        input_param: Name of the parameter receiving the step's input.

    Examples:
        >>> import math
        >>> Func(function="math.pow", input_param="x", y=2).run(3.0)
        9.0

    """

    model_config = pydantic.ConfigDict(extra="allow")

    function: pydantic.ImportString[Callable[..., Any]]
    input_param: str | None = None

    _input: str = pydantic.PrivateAttr(default="")
    _positional: list[str] = pydantic.PrivateAttr(default_factory=list)

    def _code_roots(self) -> tuple[object, ...]:
        """Return the code results depend on: the function (Func's own code is assay's)."""
        function = self.function
        if not (inspect.isroutine(function) or inspect.isclass(function)):
            function = type(function)  # a callable object (a numpy ufunc): its class is its code
        return (type(self), function)

    @classmethod
    def _exclude_from_cls_uid(cls) -> list[str]:
        """``input_param`` only names the input; it does not change results."""
        return ["input_param"]

    def model_post_init(self, context: Any, /) -> None:
        """Find the input parameter and validate the fixed arguments."""
        name = getattr(self.function, "__qualname__", repr(self.function))
        try:
            try:  # resolve string annotations (from __future__ import annotations)
                signature = inspect.signature(self.function, eval_str=True)
            except Exception:
                signature = inspect.signature(self.function)
            params = signature.parameters
        except (TypeError, ValueError) as error:
            raise TypeError(f"function={self.function!r} has no inspectable signature") from error
        clash = set(params) & set(type(self).model_fields)
        if clash:
            raise ValueError(
                f"function {name} has parameters {sorted(clash)} that clash with Func fields"
            )
        if self.input_param is not None:
            if self.input_param not in params:
                raise ValueError(
                    f"input_param={self.input_param!r} is not a parameter of {name}; "
                    f"expected one of {sorted(params)}"
                )
            self._input = self.input_param
        else:
            required = [
                p.name
                for p in params.values()
                if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            ]
            if len(required) > 1:
                raise ValueError(
                    f"function {name} has {len(required)} parameters without default "
                    f"{required}; set input_param to the one receiving the input"
                )
            self._input = required[0] if required else ""
        self._positional = [n for n, p in params.items() if p.kind == p.POSITIONAL_ONLY]
        takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
        for key, value in (self.model_extra or {}).items():
            if key == self._input:
                raise ValueError(
                    f"{key}={value!r} is the input parameter of {name}; pass it to run()"
                )
            if key not in params:
                if takes_any:
                    continue
                raise ValueError(
                    f"{key}={value!r} is not a parameter of {name}; "
                    f"expected one of {sorted(params)}"
                )
            annotation = params[key].annotation
            if annotation is not inspect.Parameter.empty and not isinstance(annotation, str):
                try:
                    pydantic.TypeAdapter(annotation).validate_python(value, strict=True)
                except pydantic.ValidationError as error:
                    raise ValueError(
                        f"{key}={value!r} does not match the annotation {annotation!r} of {name}"
                    ) from error
        super().model_post_init(context)

    @pydantic.field_serializer("function")
    def _dump_function(self, function: Callable[..., Any]) -> str:
        # Its import path, in every mode: what validates back to the same function.
        return _import_path(function)

    def _uid_fields(self) -> dict[str, Any]:
        path = _import_path(self.function)
        if "<" in path:  # <lambda>, <locals>: two different functions could share the name
            raise TypeError(
                f"function={path!r} cannot be part of a cache uid: it is not importable; "
                "use a module-level function"
            )
        return {"function": path, **(self.model_extra or {})}

    def _is_generator(self) -> bool:
        return not self._input

    def _is_pure_generator(self) -> bool:
        return not self._input  # without an input parameter, no input reaches the function

    def _run(self, *args: Any) -> Any:
        kwargs = dict(self.model_extra or {})
        if self._input and args and args[0] is not NOVALUE:
            kwargs[self._input] = args[0]
        # Positional-only parameters (e.g. math.sqrt) cannot be passed by name.
        positional = [kwargs.pop(name) for name in self._positional if name in kwargs]
        return self.function(*positional, **kwargs)
