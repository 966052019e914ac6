"""Files a run depends on: written atomically, checked when read back.

- `atomic_write` / `write_text_atomic`: write to a temporary file beside the target,
  then `os.replace` it into place, so a crash or SIGKILL leaves either the old or the
  new file, never half of one.
- `save_checkpoint` / `load_checkpoint`: a resumable state as `torch.save` file plus
  `<file>.sha256`, its SHA-256 digest. Loading verifies the digest first and loads
  with `weights_only=True` (checkpoints hold only tensors and plain Python values), so
  a damaged, truncated or foreign file is refused with one clear `CheckpointError`
  instead of resuming from garbage.
- `stored_path`: a folder path read from a record (summary.json, supernet.json);
  records store absolute paths, older ones the path as typed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

DIGEST_SUFFIX = ".sha256"


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from (damaged, unreadable or of another run)."""


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in `path`'s folder; once the block ends without error it replaces `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        yield Path(staging)
        os.replace(staging, path)
    finally:
        Path(staging).unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path) as staging:
        staging.write_text(text)


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of the file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike) -> None:
    """`torch.save` `payload` to `path` atomically and record its SHA-256 in `path`.sha256.

    The digest is written before the checkpoint is renamed into place: a crash in
    between leaves an old checkpoint with a new digest, which `load_checkpoint` refuses
    rather than trusting.
    """
    path = Path(path)
    with atomic_write(path) as staging:
        torch.save(payload, staging)
        write_text_atomic(_digest_path(path), f"{file_digest(staging)}  {path.name}\n")


def load_checkpoint(path: str | os.PathLike, restart: str) -> dict[str, Any]:
    """The payload saved by `save_checkpoint` at `path`, after checking its SHA-256.

    restart: how the user starts over instead (e.g. "delete the folder X"), ending
        the error message.
    Raises CheckpointError naming the file if it is unreadable, does not match its
    recorded digest or has none.
    """
    path = Path(path)
    digest_file = _digest_path(path)
    if not digest_file.is_file():
        raise CheckpointError(
            f"checkpoint {path} has no recorded SHA-256 ({digest_file.name}), so it cannot be trusted; {restart}"
        )
    recorded = digest_file.read_text().split()
    if not recorded or recorded[0] != file_digest(path):
        raise CheckpointError(
            f"checkpoint {path} is damaged: its SHA-256 differs from the one recorded in {digest_file.name}; {restart}"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means the same to the user
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(error).__name__}); {restart}") from error
    if not isinstance(payload, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(payload).__name__}, not a checkpoint; {restart}")
    return payload


def remove_checkpoint(path: str | os.PathLike) -> None:
    """Delete a checkpoint and its digest (missing files are fine)."""
    Path(path).unlink(missing_ok=True)
    _digest_path(Path(path)).unlink(missing_ok=True)


def _digest_path(path: Path) -> Path:
    return path.with_name(path.name + DIGEST_SUFFIX)


def stored_path(value: str, record: str | os.PathLike) -> str:
    """A path read from the record file `record`: absolute ones as they are; a relative one
    (written by older versions, as typed) relative to the working directory if it exists
    there, else relative to the record's folder."""
    path = Path(value)
    if path.is_absolute() or path.exists():
        return value
    beside = Path(record).parent / path
    return str(beside) if beside.exists() else value


def absolute_path(value: str | os.PathLike | None) -> str | None:
    """`value` made absolute if it names an existing file or folder (hub names stay as they are)."""
    if value is None:
        return None
    path = Path(value).expanduser()
    return str(path.resolve()) if path.exists() else os.fspath(value)
