"""Importing the module of an operation, with errors that say what was imported and what failed.

Python says ``No module named 'torch'`` both when the user's module is missing and when the
module was found but one of its own imports failed; an operation's import tells the two apart
and names the file and line where the import broke.
"""

from __future__ import annotations

import importlib
import os
import traceback
from types import ModuleType

from ._infrastructure import is_infrastructure_error


def import_module_of(ref: str, module_name: str) -> ModuleType:
    """Import ``module_name``, the module of the operation ``ref``.

    Raises:
        ModuleNotFoundError: The module (or a package it is in) does not exist.
        ImportError: The module was found but importing it raised (the original error is the
            cause, its type, message and place are in the message), or it exited.
        OSError: The storage failed
            ([`is_infrastructure_error`][assay_ops.is_infrastructure_error]), unwrapped.

    Examples:
        >>> import_module_of("json:dumps", "json").__name__
        'json'
        >>> try:
        ...     import_module_of("no_such_module_q:op", "no_such_module_q")
        ... except ModuleNotFoundError as error:
        ...     print(error)  # doctest: +ELLIPSIS
        operation reference 'no_such_module_q:op': no module named 'no_such_module_q'; ...

    """
    try:
        return importlib.import_module(module_name)
    except SystemExit as exit_:
        # A script that parses its command line (or exits) at import would end the caller's
        # program, a sweep's driver or a worker, with the script's own usage line.
        raise ImportError(
            f"importing module {module_name!r} of operation {ref!r} exited (SystemExit: "
            f"{exit_.code!r}); expected a module that defines the operation without exiting: "
            "keep command-line parsing under `if __name__ == '__main__':`",
            name=module_name,
        ) from exit_
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if missing == module_name or module_name.startswith(missing + "."):
            hint = module_name.replace(".", "/")
            raise ModuleNotFoundError(
                f"operation reference {ref!r}: no module named {missing!r}; expected {hint}.py "
                f"or a package {hint}/ on the Python path (the assay command looks in the "
                "current folder too) or installed",
                name=missing,
            ) from error
        raise _failed(ref, module_name, error) from error
    except Exception as error:
        if is_infrastructure_error(error):  # a full disk is said as it is, never as bad code
            raise
        raise _failed(ref, module_name, error) from error


def _failed(ref: str, module_name: str, error: Exception) -> ImportError:
    """Return the error for a module that was found but raised ``error`` at import."""
    text = error.msg if isinstance(error, SyntaxError) and error.msg else str(error)
    message = text.strip().splitlines()
    where = _where(error)
    return ImportError(
        f"operation reference {ref!r}: module {module_name!r} was found but importing it "
        "failed: "
        f"{type(error).__name__}: {message[0] if message else ''}"
        + (f" (in {where})" if where else ""),
        name=module_name,
    )


def _where(error: BaseException) -> str:
    """Return ``file line N`` of the code that raised ``error`` at import ("" when unknown).

    That is the deepest frame outside the import machinery: the user's module, or a module it
    imported (then ``file line N, imported at file line M`` of the outermost user frame).
    A syntax error has no frame of its own; its file and line are on the error.
    """
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not frame.filename.startswith("<") and not _is_import_machinery(frame.filename)
    ][1:]  # the first frame is import_module_of itself
    if isinstance(error, SyntaxError) and error.filename:
        place = f"{_short(error.filename)} line {error.lineno}"
        return place + (f", imported at {_at(frames[0])}" if frames else "")
    if not frames:
        return ""
    deepest, outermost = frames[-1], frames[0]
    if deepest.filename == outermost.filename:
        return _at(deepest)
    return f"{_at(deepest)}, imported at {_at(outermost)}"


def _is_import_machinery(filename: str) -> bool:
    return os.path.basename(os.path.dirname(filename)) == "importlib"


def _at(frame: traceback.FrameSummary) -> str:
    return f"{_short(frame.filename)} line {frame.lineno}"


def _short(filename: str) -> str:
    """Return ``filename`` relative to the current folder when it is inside it."""
    try:
        relative = os.path.relpath(filename)
    except ValueError:  # another drive (Windows)
        return filename
    return filename if relative.startswith(os.pardir) else relative
