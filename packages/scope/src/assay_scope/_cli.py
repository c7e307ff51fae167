"""``launch`` / ``run_cli``: ``auto_param`` functions as a command line."""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._base import isolated_base
from ._convert import FALSE_WORDS, TRUE_WORDS, convert
from ._docstring import param_help, summary
from ._errors import ConversionError
from ._scope import param_scope

_DEFINE_HELP = (
    "set scope keys, e.g. -D model.width=64 train.lr=0.1 (repeatable); "
    "end the list with -- before positional arguments"
)


def launch(
    func: Callable[..., Any] | None = None,
    *,
    argv: Sequence[str] | None = None,
    _caller_globals: Mapping[str, Any] | None = None,
    _caller_locals: Mapping[str, Any] | None = None,
) -> Any:
    """Run ``auto_param`` functions from the command line and return the result.

    ``launch(f)`` exposes one function: its required parameters become positional arguments,
    its defaulted ones ``--name VALUE`` options, and ``-D/--define key=value ...`` sets any
    scope keys for the call (several after one ``-D``, or one ``-D`` each). Threads the function
    starts see the ``-D`` values too (they are published as with ``param_scope.frozen()``, and
    withdrawn when the function returns). ``launch()`` without a function exposes every public
    ``auto_param`` function defined in the calling module, as subcommands named after them
    (with a single one, naming it is optional): those of the calling function (its locals)
    and of its module (its globals). ``--help`` lists the parameters with their defaults and
    the docstring's descriptions.

    Args:
        func: the ``auto_param`` function to expose; None for those of the caller.
        argv: the arguments to parse; ``sys.argv[1:]`` when None.
        _caller_globals: the namespace to look for functions in instead of the caller's
            globals, given with ``_caller_locals`` (as hyperparameter's ``launch`` takes them).
        _caller_locals: the caller's locals, searched before the globals.

    Returns:
        What the called function returned.

    Examples:
        >>> from assay_scope import auto_param, launch
        >>> @auto_param
        ... def train(lr=0.1, epochs=10):
        ...     return lr, epochs
        >>> launch(train, argv=["--lr", "0.5", "-D", "train.epochs=3"])
        (0.5, 3)
        >>> def main(argv):
        ...     @auto_param
        ...     def fit(lr=0.1):
        ...         return "fit", lr
        ...     return launch(argv=argv)  # finds fit among the caller's locals
        >>> main(["fit", "--lr", "2"])
        ('fit', 2.0)

    """
    if _caller_globals is None or _caller_locals is None:
        _caller_globals, _caller_locals = _caller_namespaces()
    return _launch(func, _caller_globals, _caller_locals, argv)


def run_cli(
    func: Callable[..., Any] | None = None,
    *,
    argv: Sequence[str] | None = None,
    _caller_globals: Mapping[str, Any] | None = None,
    _caller_locals: Mapping[str, Any] | None = None,
) -> Any:
    """Alias of ``launch``, with a name less likely to clash with the user's own."""
    if _caller_globals is None or _caller_locals is None:
        _caller_globals, _caller_locals = _caller_namespaces()
    return _launch(func, _caller_globals, _caller_locals, argv)


def _caller_namespaces() -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """Return the globals and locals of the code that called ``launch`` or ``run_cli``."""
    frame = inspect.currentframe()
    try:
        caller = frame.f_back.f_back if frame and frame.f_back else None
        if caller is None:
            return {}, {}
        return caller.f_globals, caller.f_locals
    finally:
        del frame  # a frame held in a local is a reference cycle


def _launch(
    func: Callable[..., Any] | None,
    caller_globals: Mapping[str, Any],
    caller_locals: Mapping[str, Any],
    argv: Sequence[str] | None,
) -> Any:
    if isinstance(argv, str):
        # A str is a Sequence[str]: argparse would read "--lr 0.5" as "-", "-", "l", ...
        raise TypeError(
            f"argv={argv!r} is a str; expected a list of str such as {argv.split()!r}, or "
            "None for sys.argv[1:]"
        )
    args = list(sys.argv[1:] if argv is None else argv)
    if func is not None:
        if not isinstance(getattr(func, "_auto_param_namespace", None), str):
            raise ValueError(
                f"launch() expects a function decorated with @auto_param, got {func!r}"
            )
        return _call(func, _parser(func, None), args)
    commands = _module_functions(caller_globals, caller_locals)
    if not commands:
        module = caller_globals.get("__name__", "the calling module")
        raise RuntimeError(f"launch() found no public @auto_param function in {module}")
    if len(commands) == 1:
        ((name, only),) = commands.items()
        if args[:1] == [name]:
            args = args[1:]
        return _call(only, _parser(only, None), args)
    module_doc = summary(caller_globals.get("__doc__")).split("\n\n", 1)[0]
    parser = argparse.ArgumentParser(description=module_doc or None)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in commands.items():
        first_line = summary(command.__doc__).split("\n", 1)[0]
        _parser(command, subparsers.add_parser(name, help=first_line, **_parser_options(command)))
    chosen = parser.parse_args(args).command
    command_parser = _parser(commands[chosen], None, prog=f"{parser.prog} {chosen}")
    return _call(commands[chosen], command_parser, args[1:])


def _module_functions(
    caller_globals: Mapping[str, Any], caller_locals: Mapping[str, Any]
) -> dict[str, Callable[..., Any]]:
    """Return the public auto_param functions defined (not imported) in the calling module.

    The caller's locals come first (the functions a ``main()`` defines before calling
    ``launch()``), then its module's globals; a local hides a global of the same name.
    """
    module = caller_globals.get("__name__")
    found: dict[str, Callable[..., Any]] = {}
    for namespace in (caller_locals, caller_globals):
        for name, obj in namespace.items():
            if (
                name not in found
                and not name.startswith("_")
                and callable(obj)
                and isinstance(getattr(obj, "_auto_param_namespace", None), str)
                and getattr(obj, "__module__", None) == module
                and not any(obj is seen for seen in found.values())
            ):
                found[name] = obj
    return found


class _Defines(argparse.Action):
    """``-D/--define KEY=VALUE ...``: each word checked as it is read, all of them kept."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        words = [values] if isinstance(values, str) else list(values or [])
        for text in words:
            if "=" not in text or not text.split("=", 1)[0].strip():
                # Usually a positional argument written after -D, which takes every word up
                # to the next option: say how to write it.
                raise argparse.ArgumentError(
                    self,
                    f"expects KEY=VALUE, got {text!r} (-D takes the words after it up to the "
                    "next option: write positional arguments before -D, or end its list "
                    "with --)",
                )
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest, None) or []), *words])


def _parser_options(func: Callable[..., Any]) -> dict[str, Any]:
    return {
        "description": summary(func.__doc__) or None,
        "formatter_class": argparse.RawDescriptionHelpFormatter,
    }


def _parser(
    func: Callable[..., Any], parser: argparse.ArgumentParser | None, prog: str | None = None
) -> argparse.ArgumentParser:
    if parser is None:
        prog = _prog(func) if prog is None else prog
        parser = argparse.ArgumentParser(prog=prog, **_parser_options(func))
    parser.add_argument(
        "-D",
        "--define",
        nargs="*",
        action=_Defines,
        default=[],
        metavar="KEY=VALUE",
        help=_DEFINE_HELP,
    )
    helps = param_help(func.__doc__)
    for name, param in _signature(func).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        described = helps.get(name, "")
        if param.default is param.empty:
            parser.add_argument(name, type=_required_type(name, param), help=described or None)
        else:
            option: dict[str, Any] = {
                "dest": name,
                "type": _converter(name, param.default),
                "default": argparse.SUPPRESS,  # absent: the scope or the default decides
                "metavar": name.upper(),
            }
            help_text = f"{described} (default: {param.default!r})".strip()
            parser.add_argument(f"--{name.replace('_', '-')}", help=help_text, **option)
            if "_" in name:
                # hyperparameter's spelling (--batch_size): scripts written for it keep working;
                # the help shows the usual one only
                parser.add_argument(f"--{name}", help=argparse.SUPPRESS, **option)
    return parser


def _signature(func: Callable[..., Any]) -> inspect.Signature:
    """Return the signature with string annotations resolved where possible.

    Under ``from __future__ import annotations`` every annotation is a string, and ``"int"`` is
    not ``int``: without resolving them, a required ``count: int`` would reach the function as
    a string. An annotation that cannot be resolved (a name imported only for type checkers)
    leaves all of them unresolved, and such arguments stay strings, as without annotations.
    """
    try:
        return inspect.signature(func, eval_str=True)
    except Exception:  # any error of the user's annotation expressions: NameError, TypeError...
        return inspect.signature(func)


def _prog(func: Callable[..., Any]) -> str:
    # The script alone: the function is not a subcommand (launch(f) refuses its name), so a
    # usage line "script f ..." would show a command line that fails.
    script = sys.argv[0].rsplit("/", 1)[-1] if sys.argv and sys.argv[0] else ""
    return script or func.__name__


def _required_type(name: str, param: inspect.Parameter) -> Callable[[str], Any]:
    annotation = param.annotation
    if annotation is bool:
        # bool("false") is True: a required flag takes the words a bool default takes.
        return _to_bool(name)
    if annotation in (int, float, str):
        return annotation  # type: ignore[no-any-return]
    return str


def _to_bool(name: str) -> Callable[[str], bool]:
    def parse(text: str) -> bool:
        word = text.strip().lower()
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return word in TRUE_WORDS
        raise argparse.ArgumentTypeError(
            f"parameter {name!r} = {text!r} cannot be converted to bool (its annotation): "
            "expected true/false, yes/no, 1/0 or on/off"
        )

    parse.__name__ = "bool"
    return parse


def _converter(name: str, default: Any) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return convert(f"--{name}", text, default)
        except ConversionError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = type(default).__name__
    return parse


def _call(func: Callable[..., Any], parser: argparse.ArgumentParser, args: list[str]) -> Any:
    values = vars(parser.parse_args(args))
    defines = values.pop("define")
    # Positional-only parameters cannot be passed by keyword: pass them in order, with the
    # default of any that was not given (the scope never sets them, see auto_param).
    positional = []
    for name, param in _signature(func).parameters.items():
        if param.kind is not param.POSITIONAL_ONLY:
            break
        positional.append(values.pop(name) if name in values else param.default)
    try:
        # Published first, so that threads the function starts see the -D values too; the
        # block withdraws them when the function returns.
        with isolated_base(), param_scope(*defines):
            param_scope.frozen()
            return func(*positional, **values)
    except ConversionError as error:
        # A bad -D value is a usage error, reported like argparse reports a bad option.
        if any(text.split("=", 1)[0].strip() == error.key for text in defines):
            parser.error(f"-D {error.key}: {error}")
        raise
