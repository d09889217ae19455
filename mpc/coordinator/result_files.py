"""Large results in files of their own beside the job database.

SQLite writes a blob twice (into the write-ahead log, then into the database at the next
checkpoint), page by page: for a 10^6-value result (8 MB) that cost the coordinator ~16 ms of
CPU per job. A result of at least :data:`FILE_RESULT_BYTES` is instead written once, durably,
to ``<database>.results/<job id>.f64`` (little-endian float64, no header) before the job's
row says it succeeded; the row names the file. Back up that directory with the database.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np

from mpc.errors import LocalFileError, TransportError

log = logging.getLogger(__name__)

#: Results at least this large (in bytes) go to a file.
FILE_RESULT_BYTES = 1 << 20
#: Job ids are made by the coordinator; a file name is only ever made from one of these.
_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def write_result_file(directory: Path, job_id: str, data: np.ndarray) -> str:
    """Write ``data`` (contiguous little-endian float64) durably: written, fsync'd, renamed
    into place, the directory fsync'd. Returns the file's name within ``directory``."""
    if not _JOB_ID.fullmatch(job_id):
        raise TransportError(f"job id {job_id!r} cannot name a result file")
    final = directory / f"{job_id}.f64"
    partial = final.with_name(final.name + ".partial")
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            contiguous = np.ascontiguousarray(data, dtype="<f8")
            view = memoryview(contiguous.view(np.uint8).data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(partial, final)
        folder = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except OSError as exc:
        raise LocalFileError(
            f"the coordinator cannot write a result file in {directory}: {exc.strerror or exc}"
        ) from None
    return final.name


def read_result_file(directory: Path, job_id: str, name: str) -> np.ndarray:
    """The values of a result file; a clear error when it is gone."""
    if os.sep in name or name.startswith("."):
        raise TransportError(f"job {job_id}: the database names an invalid result file")
    try:
        return np.fromfile(directory / name, dtype="<f8")
    except OSError as exc:
        # The path and the reason to the coordinator's log; the client gets a public reason.
        log.error(
            "the result of job %s is missing from %s (%s); restore it from the backup of "
            "that directory",
            job_id,
            directory,
            exc.strerror or exc,
        )
        raise TransportError(
            f"the result of job {job_id} is missing on the coordinator (see its log)"
        ) from None


__all__ = ["FILE_RESULT_BYTES", "read_result_file", "write_result_file"]
