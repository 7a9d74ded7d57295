"""KubeLB resources from YAML/JSON files: load a file or a folder, and watch it for changes.

Output: a `Snapshot` of raw documents (dicts, with the file and position they came from) plus
the errors of files that could not be read. Decoding documents into API models happens later, so
a bad document only affects itself.

A file that stops parsing (an editor mid-save, a typo) keeps contributing its last good
documents, and the error is reported: a typo never tears down traffic. The same holds for a
file that cannot be read at all: replaced by a folder, a dangling symlink or a symlink loop (each
is reported, never skipped silently), nested too deeply (`MAX_DEPTH`), and for the configured
folder itself when it vanishes or is renamed: its last good documents stay in place, with an
error that says why, until it is back. Watching polls file
signatures (path, inode, size, mtime) a few times a second, which also sees an editor's
rename-on-save and needs no platform-specific notification API.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

SUFFIXES = (".yaml", ".yml", ".json")
DEFAULT_POLL_SECONDS = 0.2
# Deeper documents are refused: no API object nests anywhere near this, and a few kilobytes of
# brackets would otherwise exhaust the parser's recursion (and every walk after it).
MAX_DEPTH = 64
# YAML aliases can expand a small file into billions of nodes ("billion laughs"): refused too.
MAX_NODES = 1_000_000

Signature = tuple[tuple[str, int, int, int], ...]


@dataclass(frozen=True, slots=True)
class Document:
    """One YAML document that is a mapping. `origin` reads like `demo.yaml#2` for errors."""

    body: Mapping[str, Any]
    path: Path
    index: int

    @property
    def origin(self) -> str:
        return f"{self.path}#{self.index}"


@dataclass(frozen=True, slots=True)
class FileError:
    path: Path
    message: str
    # True when the file's last good documents are still being served in its place.
    using_last_good: bool = False


@dataclass(frozen=True, slots=True)
class Snapshot:
    documents: tuple[Document, ...] = ()
    errors: tuple[FileError, ...] = ()


class SourceError(Exception):
    """The configured path cannot be used at all (missing, not a file or folder)."""


@dataclass
class FileSource:
    """Loads `path` (a file, or a folder of *.yaml/*.yml/*.json files, not recursive)."""

    path: Path
    _last_good: dict[Path, tuple[Document, ...]] = field(default_factory=dict)

    def files(self) -> list[Path]:
        """Every entry named like a config file, whatever it is: one that is not a readable
        file (a folder, a broken symlink) fails to read and is reported, never skipped."""
        if self.path.is_dir():
            try:
                return sorted(
                    p
                    for p in self.path.iterdir()
                    if p.suffix in SUFFIXES and not p.name.startswith(".")
                )
            except OSError as e:
                raise SourceError(f"config folder {self.path} cannot be listed: {e}") from e
        if self.path.is_file():
            return [self.path]
        raise SourceError(f"config path {self.path} does not exist or is not a file or folder")

    def signature(self) -> Signature:
        sig = []
        for p in self.files():
            try:
                st = p.stat()
            except OSError:
                try:
                    st = p.lstat()  # a dangling symlink or a loop: its link's own signature
                except OSError:
                    continue  # removed since the listing
            sig.append((str(p), st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(sig)

    def load(self) -> Snapshot:
        """The documents of every file. When the configured path itself is gone, the last good
        documents of every file with an error naming the path (`SourceError` when there were
        none yet)."""
        try:
            present = self.files()
        except SourceError as e:
            if not self._last_good:
                raise
            logger.error("%s; serving the last good version of its %d file(s)", e,
                         len(self._last_good))  # fmt: skip
            kept = [d for p in sorted(self._last_good) for d in self._last_good[p]]
            return Snapshot(tuple(kept), (FileError(self.path, str(e), using_last_good=True),))
        documents: list[Document] = []
        errors: list[FileError] = []
        for p in present:
            try:
                docs = _read(p)
            except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError, RecursionError) as e:
                last = self._last_good.get(p)
                message = _describe(e)
                errors.append(FileError(p, message, using_last_good=last is not None))
                logger.error(
                    "cannot load %s: %s%s",
                    p,
                    message,
                    "; serving its last good version" if last else "",
                )
                documents.extend(last or ())
                continue
            self._last_good[p] = docs
            documents.extend(docs)
        for gone in set(self._last_good) - set(present):
            del self._last_good[gone]
        return Snapshot(documents=tuple(documents), errors=tuple(errors))

    async def watch(
        self, poll_seconds: float = DEFAULT_POLL_SECONDS
    ) -> AsyncGenerator[Snapshot, None]:
        """Yield the current snapshot, then a new one after every change to the files."""
        last_sig: Signature | None = None
        while True:
            sig = await asyncio.to_thread(self._signature_or_none)
            if sig != last_sig:
                # Let a burst of writes (an editor saving several files) settle into one reload.
                await asyncio.sleep(poll_seconds / 2)
                sig = await asyncio.to_thread(self._signature_or_none)
                try:
                    snapshot = await asyncio.to_thread(self.load)
                except SourceError as e:
                    logger.error("%s", e)
                    snapshot = Snapshot(errors=(FileError(self.path, str(e)),))
                last_sig = sig
                yield snapshot
            await asyncio.sleep(poll_seconds)

    def _signature_or_none(self) -> Signature | None:
        """None while the configured path is unusable: a distinct state, so that its return
        (even empty) is a change."""
        try:
            return self.signature()
        except SourceError:
            return None


def _read(path: Path) -> tuple[Document, ...]:
    if not path.is_file():
        if path.is_symlink() and not path.exists():
            raise OSError(f"{path} is a symlink to nothing (dangling, or a loop)")
        if path.is_dir():
            raise OSError(f"{path} is a folder, not a file")
    text = path.read_text(encoding="utf-8")
    docs: list[Document] = []
    try:
        for index, body in enumerate(yaml.safe_load_all(text)):
            if body is None:
                continue  # an empty document between separators
            if not isinstance(body, dict):
                raise ValueError(f"document {index} is a {type(body).__name__}, not a mapping")
            if (why := _too_big(body)) is not None:
                raise ValueError(f"document {index} {why}")
            docs.append(Document(body=body, path=path, index=index))
    except RecursionError:
        raise ValueError(f"a document nests deeper than {MAX_DEPTH} levels") from None
    return tuple(docs)


def _too_big(value: Any) -> str | None:
    """Why `value` cannot be served: nested deeper than MAX_DEPTH or more than MAX_NODES values
    once aliases are expanded. Iterative: no recursion limit to hit."""
    stack = [(value, 1)]
    nodes = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            return f"nests deeper than {MAX_DEPTH} levels"
        if nodes > MAX_NODES:
            return f"holds more than {MAX_NODES} values (YAML aliases expanded)"
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return None


def _describe(e: BaseException) -> str:
    mark = getattr(e, "problem_mark", None)
    if isinstance(e, yaml.YAMLError) and mark is not None:
        problem = getattr(e, "problem", None) or "invalid YAML"
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return str(e)
