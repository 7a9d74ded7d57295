"""KubeLB resources from YAML/JSON files: load a file or a folder, and watch it for changes.

Output: a `Snapshot` of raw documents (dicts, with the file and position they came from) plus
the errors of files that could not be read. Decoding documents into API models happens later, so
a bad document only affects itself.

A file that stops parsing (an editor mid-save, a typo) keeps contributing its last good
documents, and the error is reported: a typo never tears down traffic. Watching polls file
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
        if self.path.is_dir():
            return sorted(
                p
                for p in self.path.iterdir()
                if p.suffix in SUFFIXES and p.is_file() and not p.name.startswith(".")
            )
        if self.path.is_file():
            return [self.path]
        raise SourceError(f"config path {self.path} does not exist or is not a file or folder")

    def signature(self) -> Signature:
        sig = []
        for p in self.files():
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            sig.append((str(p), st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(sig)

    def load(self) -> Snapshot:
        documents: list[Document] = []
        errors: list[FileError] = []
        present = self.files()
        for p in present:
            try:
                docs = _read(p)
            except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError) as e:
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
            try:
                sig = await asyncio.to_thread(self.signature)
            except SourceError as e:
                logger.error("%s", e)
                sig = ()
            if sig != last_sig:
                # Let a burst of writes (an editor saving several files) settle into one reload.
                await asyncio.sleep(poll_seconds / 2)
                try:
                    sig = await asyncio.to_thread(self.signature)
                    snapshot = await asyncio.to_thread(self.load)
                except SourceError as e:
                    snapshot = Snapshot(errors=(FileError(self.path, str(e)),))
                last_sig = sig
                yield snapshot
            await asyncio.sleep(poll_seconds)


def _read(path: Path) -> tuple[Document, ...]:
    text = path.read_text(encoding="utf-8")
    docs: list[Document] = []
    for index, body in enumerate(yaml.safe_load_all(text)):
        if body is None:
            continue  # an empty document between separators
        if not isinstance(body, dict):
            raise ValueError(f"document {index} is a {type(body).__name__}, not a mapping")
        docs.append(Document(body=body, path=path, index=index))
    return tuple(docs)


def _describe(e: BaseException) -> str:
    mark = getattr(e, "problem_mark", None)
    if isinstance(e, yaml.YAMLError) and mark is not None:
        problem = getattr(e, "problem", None) or "invalid YAML"
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return str(e)
