"""The result on the job's event stream, with real processes: no GetResult hop for the
client; GetResult still answers, also after a coordinator restart; and a client that may not
see the job gets no values on a watch stream."""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
import pytest

from mpc.client import Client
from mpc.proto.v1 import coordinator_pb2
from tests.integration.conftest import BOUNDS, COLUMNS, ClusterFactory
from tests.integration.test_ownership import add_identities, client_as

pytestmark = pytest.mark.integration


class CountingGetResult:
    def __init__(self, call: Any) -> None:
        self.call = call
        self.calls = 0

    def __call__(self, *args: Any, **kw: Any) -> Any:
        self.calls += 1
        return self.call(*args, **kw)


def test_the_result_arrives_on_the_watch_stream(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(n_parties=3, rows=40)
    add_identities(cluster.tls_dir, ["mallory"])
    with cluster.client() as client:
        counter = CountingGetResult(client._stub.GetResult)
        client._stub.GetResult = counter
        submits = CountingGetResult(client._stub.SubmitJob)
        watches = CountingGetResult(client._stub.WatchJob)
        client._stub.SubmitJob, client._stub.WatchJob = submits, watches
        result = client.mean("people", COLUMNS, bounds=BOUNDS)
        assert counter.calls == 0  # the values came on the job's stream
        assert submits.calls == watches.calls == 0  # one RunJob call did it all
        assert len(result.values) == len(COLUMNS)
        job_id = result.job_id
        again = client.result(job_id)
        assert counter.calls == 1
        np.testing.assert_array_equal(again.values, result.values)
        assert again.labels == result.labels and again.tolerance == result.tolerance

        # The raw stream: the terminal event carries the header and the values.
        events = list(
            client._stub.WatchJob(coordinator_pb2.WatchJobRequest(job_id=job_id), timeout=30)
        )
        last = events[-1]
        assert last.state == coordinator_pb2.JOB_STATE_SUCCEEDED and last.HasField("result")
        assert last.result.length == len(COLUMNS)
        np.testing.assert_array_equal(np.frombuffer(last.values, "<f8"), result.values)

    # Another client: NOT_FOUND on the watch, and no values on its stream.
    with client_as(cluster, "mallory") as other:
        received: list[coordinator_pb2.JobEvent] = []
        with pytest.raises(grpc.RpcError) as caught:
            for event in other._stub.WatchJob(
                coordinator_pb2.WatchJobRequest(job_id=job_id), timeout=30
            ):
                received.append(event)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert not any(e.HasField("result") or e.values for e in received)

    cluster.stop_process("coordinator")
    cluster.start_coordinator()
    with Client(cluster.coordinator_address, tls_dir=cluster.tls_dir, timeout=60) as client:
        stored = client.result(job_id)
        np.testing.assert_array_equal(stored.values, result.values)
        # A watch after the restart (the job's events are gone) still carries the result.
        seen = client.follow(job_id)
        np.testing.assert_array_equal(seen.values, result.values)
