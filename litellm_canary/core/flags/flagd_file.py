"""``flag_store: {kind: flagd_file, path}``: the flagd flag-definition JSON file shared by several
processes (:class:`FlagdFileStore`, atomic locked writes) and the flagd provider that reads it in
in-process file mode (:func:`flagd_file_provider`)."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from openfeature.provider import AbstractProvider

from litellm_canary.core.decision import Side
from litellm_canary.core.flags.definitions import flag_definition
from litellm_canary.core.flags.log_limit import quiet_flagd_logs


class FlagdFileStore:
    """``flag_store: {kind: flagd_file, path}``: a flagd flag-definition JSON file.

    Each write is a locked read-modify-write that keeps every other flag (and any top-level key such
    as ``$schema`` or ``$evaluators``) intact, then replaces the file atomically (temp file in the
    same directory, fsync, rename), so a reader never sees a half-written file and concurrent
    writers from several processes lose nothing.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def set_side(
        self,
        flag_key: str,
        side: Side,
        *,
        metadata: Mapping[str, float | int | str | bool | None] | None = None,
    ) -> None:
        """Serve ``side``; ``metadata`` changes (None removes a key) go into the same atomic write."""
        self.write_flag(flag_key, flag_definition(variant=side), metadata=metadata)

    def set_canary_percent(self, flag_key: str, percent: float) -> None:
        self.write_flag(flag_key, flag_definition(canary_percent=percent))

    def describe(self) -> str:
        return f"flagd_file:{self.path}"

    def definition(self, flag_key: str) -> Mapping[str, Any] | None:
        """The flag's current definition in the file (``None``: no such flag)."""
        value = self.read()["flags"].get(flag_key)
        return value if isinstance(value, Mapping) else None

    def read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {"flags": {}}
        document = json.loads(text)
        if not isinstance(document, dict) or not isinstance(document.get("flags", {}), dict):
            raise ValueError(f"{self.path} is not a flagd flag-definition document (no 'flags' object)")
        document.setdefault("flags", {})
        return document

    def write_flag(
        self,
        flag_key: str,
        definition: Mapping[str, Any],
        *,
        metadata: Mapping[str, float | int | str | bool | None] | None = None,
    ) -> None:
        from filelock import FileLock

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock", timeout=10):
            document = self.read()
            new = dict(definition)
            # The flag's metadata (e.g. the canary window, litellm_canary.release.canary_window)
            # outlives a re-write.
            old_metadata = (document["flags"].get(flag_key) or {}).get("metadata")
            if "metadata" not in new and old_metadata:
                new["metadata"] = old_metadata
            if metadata:
                merged = {**(new.get("metadata") or {}), **metadata}
                new["metadata"] = {key: value for key, value in merged.items() if value is not None}
            document["flags"][flag_key] = new
            self._replace(json.dumps(document, indent=2, sort_keys=True) + "\n")

    def update_metadata(self, flag_key: str, changes: Mapping[str, float | int | str | bool | None]) -> None:
        """Set (or, for ``None``, remove) keys of a flag's ``metadata``; the flag must exist."""
        from filelock import FileLock

        with FileLock(str(self.path) + ".lock", timeout=10):
            document = self.read()
            flag = document["flags"].get(flag_key)
            if not isinstance(flag, dict):
                raise KeyError(f"flag {flag_key!r} is not in {self.path}")
            metadata = {**(flag.get("metadata") or {}), **changes}
            flag["metadata"] = {key: value for key, value in metadata.items() if value is not None}
            self._replace(json.dumps(document, indent=2, sort_keys=True) + "\n")

    def _replace(self, text: str) -> None:
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        # flagd's file watcher compares mtimes; make sure a write within the same tick still moves it.
        stat = self.path.stat()
        os.utime(self.path, ns=(stat.st_atime_ns, max(stat.st_mtime_ns, time.time_ns())))


def flagd_file_provider(path: str | Path, poll_ms: int = 100) -> AbstractProvider:
    """The flagd provider in in-process file mode (no flagd daemon needed), polling ``path``.

    Its one provider hook (flagd's ``SyncMetadataHook``) adds the sync metadata a flagd *sync
    stream* sends; a file sends none, so the hook adds nothing and is left out while that holds. A
    provider without hooks lets a flag read skip the SDK's hook machinery
    (:mod:`~litellm_canary.core.flags.direct_evaluation`)."""
    from openfeature.contrib.provider.flagd import FlagdProvider
    from openfeature.contrib.provider.flagd.config import ResolverType

    class FileFlagdProvider(FlagdProvider):
        def get_provider_hooks(self) -> list[Any]:
            # enriched_context: what the sync stream sent; absent (another flagd version): keep hooks
            if getattr(self, "enriched_context", True):
                return list(super().get_provider_hooks())
            return []

    quiet_flagd_logs()
    provider: AbstractProvider = FileFlagdProvider(
        resolver_type=ResolverType.IN_PROCESS, offline_flag_source_path=str(path), deadline_ms=poll_ms
    )
    return provider
