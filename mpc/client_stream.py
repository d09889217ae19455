"""A job's event stream, read by the client: progress to a callback, the result in place.

The coordinator sends the revealed values on the job's terminal event (chunked over further
events past ~1 MiB); they are copied once, straight into their final array.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from mpc.coordinator.events import JobEvent
from mpc.proto.v1 import coordinator_pb2
from mpc.transport.convert_vectors import FloatFiller


def collect(
    events: Iterable[coordinator_pb2.JobEvent],
    on_event: Callable[[coordinator_pb2.JobEvent], None] | None = None,
) -> tuple[str, coordinator_pb2.ResultHeader | None, np.ndarray]:
    """Read a job's events to the end: its id, the result header (None when the stream
    carried no result) and the values. ``on_event`` sees every progress event."""
    job_id = ""
    header: coordinator_pb2.ResultHeader | None = None
    filler = FloatFiller(0)
    for event in events:
        if header is None:
            job_id = job_id or event.job_id
            if on_event is not None:
                on_event(event)
            if not event.HasField("result"):
                continue
            header = event.result
            filler = FloatFiller(header.length)
        filler.add(event.values)
    if header is None or header.state != coordinator_pb2.JOB_STATE_SUCCEEDED:
        return job_id, header, filler.values
    return job_id, header, filler.finish()


def progress_callback(
    on_event: Callable[[JobEvent], None] | None,
    convert: Callable[[coordinator_pb2.JobEvent], JobEvent],
) -> Callable[[coordinator_pb2.JobEvent], None] | None:
    """``on_event`` fed with converted events (None stays None: nothing to convert)."""
    if on_event is None:
        return None
    callback = on_event
    return lambda event: callback(convert(event))


__all__ = ["collect", "progress_callback"]
