"""A folder argument that names a file: refused with the key, the value and what was expected."""

from __future__ import annotations

from pathlib import Path


def check_folder(folder: str | Path, key: str, expected: str) -> Path:
    """Return ``folder`` as a path; raise when it, or the folder it would be made in, is a file.

    Python's own error for a file where a folder should be (``FileExistsError`` when making
    it, ``NotADirectoryError`` deep inside it) names neither the argument nor the remedy.

    Args:
        folder: the value given.
        key: the argument that gave it (``folder``, ``--folder``), for the message.
        expected: what the argument should name, for the message.

    Raises:
        ValueError: ``folder`` is a file (or a link to nothing), or lies inside one.

    Examples:
        >>> import tempfile, os
        >>> with tempfile.NamedTemporaryFile() as file:
        ...     check_folder(file.name, "folder", "a folder")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: folder = '...' is a file; expected a folder

    """
    path = Path(folder)
    here = path
    while not here.is_dir():
        if here.is_symlink() and not here.exists():
            kind = f"a link to {str(here.readlink())!r}, which does not exist"
            break
        if here.exists():
            if here.is_dir():  # another process made it since the first look: a folder
                return path
            kind = "a file" if here.is_file() else "not a folder"
            break
        if here.parent == here:  # nothing of it exists
            return path
        here = here.parent
    else:
        return path  # a folder, or a path whose first existing part is one
    where = "" if here == path else f" is inside {str(here)!r}, which"
    raise ValueError(f"{key} = {str(folder)!r}{where} is {kind}; expected {expected}")
