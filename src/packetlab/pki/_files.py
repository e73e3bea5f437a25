"""Reading input files with one-line errors that name the file."""

from __future__ import annotations

import os
from pathlib import Path

from packetlab.pki._errors import PkiInputError


def read_input(path: str | os.PathLike[str], error: type[PkiInputError]) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from None


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (library errors can run to many lines)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
