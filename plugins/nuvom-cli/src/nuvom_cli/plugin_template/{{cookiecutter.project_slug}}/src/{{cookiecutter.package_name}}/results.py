"""A result backend writing one JSON file per finished job.

Each save writes ``<id>.json.tmp`` then renames it over ``<id>.json``
(``os.replace`` is atomic on POSIX and Windows), so a reader never sees half a
file and several processes can share the directory.  Job ids are validated by
the kernel (``validate_id``), which keeps them safe as file names everywhere.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from nuvom_support.backend_base import ResultStoreBase
from nuvom_kernel.models import Job, validate_id


class JsonFileResultBackend(ResultStoreBase):
    """Implements ResultBackend (nuvom_kernel.contracts); ``wait`` polls ``get_result``."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, job_id: str) -> Path:
        return self.directory / f"{validate_id(job_id)}.json"

    def save(self, job: Job) -> None:
        final = self._path(job.id)
        tmp = final.with_name(f"{final.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(job.to_json(), encoding="utf-8")
        os.replace(tmp, final)

    def get_result(self, job_id: str) -> Job | None:
        try:
            data = self._path(job_id).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        return Job.from_json(data)

    def purge(self, *, older_than: float | None = None) -> int:
        removed = 0
        for path in self.directory.glob("*.json"):
            try:
                job = Job.from_json(path.read_text(encoding="utf-8"))
            except FileNotFoundError:  # purged by another process meanwhile
                continue
            finished = job.finished_at or job.updated_at
            if older_than is None or finished < older_than:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def close(self) -> None:
        """Nothing to release: every call opens and closes its own file."""
