"""Raw gRPC baseline for the secure-sum benchmark: the same bytes, no protection.

Each party is a separate process (``python bench/raw_grpc.py serve ...``) that loads its
vectors into memory at start and streams one of them, on request, as ~1 MiB chunks of
little-endian 8-byte words. The aggregator (:class:`RawAggregator`, in the benchmark process)
pulls from all parties concurrently, one thread per party, and adds the chunks with numpy as
they arrive.

It uses the same transport as the product: mutual TLS with the certificates of a
:class:`~mpc.demo.cluster.LocalCluster` (each server presents its party certificate, the
aggregator presents the coordinator's), the channel and server options of
:mod:`mpc.transport.tls`, and the product's chunk size. No ``.proto``: generic handlers
with bytes in and bytes out. What it leaves out is exactly what the secure path adds: job
orchestration, key agreement, fixed-point encoding, masking, the job store and the second
hop that delivers the result to the client.

A second method, ``RoundTrip``, is the raw counterpart of one training round
(:meth:`RawAggregator.round_trip`): the aggregator sends one request carrying a payload (the
public round input) to every party concurrently and each party streams back a reply of a
requested number of 8-byte words (its share), summed with numpy as it arrives.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType, TracebackType

import grpc
import numpy as np

from mpc.config import TlsFiles
from mpc.sharing import CHUNK_WORDS
from mpc.transport.tls import new_server, secure_channel, server_credentials

METHOD = "/bench.RawSum/Pull"
ROUND_TRIP = "/bench.RawSum/RoundTrip"
_REPLY_WORDS = np.dtype("<u8")  # first 8 bytes of a RoundTrip request: the reply's word count
_LE_F64 = np.dtype("<f8")


def _identity_bytes(data: bytes) -> bytes:
    return data


# --- party process ---------------------------------------------------------------------------


def _pull_handler(
    vectors: Mapping[str, np.ndarray],
) -> grpc.GenericRpcHandler:
    def pull(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        vector = vectors.get(request.decode())
        if vector is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown vector")
        assert vector is not None
        for offset in range(0, vector.size, CHUNK_WORDS):
            yield vector[offset : offset + CHUNK_WORDS].tobytes()

    def round_trip(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        if len(request) < 8 or len(request) % 8:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "malformed round-trip request")
        words = int(np.frombuffer(request[:8], dtype=_REPLY_WORDS)[0])
        payload_words = len(request) // 8 - 1
        # A reply the aggregator can check: word i is i + the payload's word count.
        reply = np.arange(words, dtype=_LE_F64) + payload_words
        for offset in range(0, words, CHUNK_WORDS):
            yield reply[offset : offset + CHUNK_WORDS].tobytes()

    handlers = {
        name: grpc.unary_stream_rpc_method_handler(
            call, request_deserializer=_identity_bytes, response_serializer=_identity_bytes
        )
        for name, call in (("Pull", pull), ("RoundTrip", round_trip))
    }
    return grpc.method_handlers_generic_handler("bench.RawSum", handlers)


def serve(party_id: str, tls_dir: Path, data: dict[str, Path], ready_file: Path) -> None:
    identity = TlsFiles.from_dir(tls_dir, party_id).load()
    # In memory before the first request, as the secure parties' cache is after warm-up.
    vectors = {
        name: np.ascontiguousarray(np.load(path, allow_pickle=False), dtype=_LE_F64)
        for name, path in data.items()
    }
    server = new_server(16)  # the product's RunningServer default
    server.add_generic_rpc_handlers((_pull_handler(vectors),))
    port = server.add_secure_port("127.0.0.1:0", server_credentials(identity))
    if port == 0:
        raise OSError("cannot listen on 127.0.0.1:0")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    tmp = ready_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"address": f"127.0.0.1:{port}", "pid": os.getpid()}))
    os.replace(tmp, ready_file)
    stop.wait()
    server.stop(0.5).wait()


# --- launcher and aggregator (benchmark process) -------------------------------------------


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class RawParties:
    """Start one raw party process per party id; a context manager that always stops them."""

    def __init__(
        self,
        workdir: Path,
        tls_dir: Path,
        data: Mapping[str, Mapping[str, Path]],
        start_timeout: float = 60.0,
    ) -> None:
        self.workdir = workdir
        self.tls_dir = tls_dir
        self.data = data
        self.start_timeout = start_timeout
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.addresses: dict[str, str] = {}

    def __enter__(self) -> RawParties:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ready: dict[str, Path] = {}
        for party_id, files in self.data.items():
            ready[party_id] = self.workdir / f"raw-{party_id}.ready"
            ready[party_id].unlink(missing_ok=True)
            args = [sys.executable, str(Path(__file__).resolve()), "serve"]
            args += ["--party-id", party_id, "--tls-dir", str(self.tls_dir)]
            args += ["--ready-file", str(ready[party_id])]
            for name, path in files.items():
                args += ["--data", f"{name}={path}"]
            log = (self.workdir / f"raw-{party_id}.log").open("ab")
            self.processes[party_id] = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
            log.close()
        deadline = time.monotonic() + self.start_timeout
        for party_id, path in ready.items():
            while not path.exists():
                process = self.processes[party_id]
                if process.poll() is not None:
                    log_text = (self.workdir / f"raw-{party_id}.log").read_text(errors="replace")
                    raise RuntimeError(f"raw party {party_id} exited:\n{log_text[-2000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"raw party {party_id} did not start in time")
                time.sleep(0.02)
            self.addresses[party_id] = json.loads(path.read_text())["address"]

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(5.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5.0)
        self.processes.clear()


class RawAggregator:
    """Pulls one vector from every raw party concurrently and sums it (float64, numpy)."""

    def __init__(self, tls_dir: Path, addresses: Mapping[str, str], timeout: float = 60.0) -> None:
        identity = TlsFiles.from_dir(tls_dir, "coordinator").load()
        self.timeout = timeout
        self._channels = {
            pid: secure_channel(address, identity, expected_name=pid)
            for pid, address in addresses.items()
        }
        self._calls = {
            pid: channel.unary_stream(
                METHOD,
                request_serializer=_identity_bytes,
                response_deserializer=_identity_bytes,
            )
            for pid, channel in self._channels.items()
        }
        self._round_trips = {
            pid: channel.unary_stream(
                ROUND_TRIP,
                request_serializer=_identity_bytes,
                response_deserializer=_identity_bytes,
            )
            for pid, channel in self._channels.items()
        }
        self._pool = ThreadPoolExecutor(len(addresses), thread_name_prefix="raw-pull")

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for channel in self._channels.values():
            channel.close()

    def __enter__(self) -> RawAggregator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sum(self, name: str, length: int) -> np.ndarray:
        total = np.zeros(length, dtype=np.float64)
        lock = threading.Lock()
        request = name.encode()

        def pull(pid: str) -> int:
            filled = 0
            for data in self._calls[pid](request, timeout=self.timeout):
                part = np.frombuffer(data, dtype=_LE_F64)
                with lock:
                    np.add(
                        total[filled : filled + part.size],
                        part,
                        out=total[filled : filled + part.size],
                    )
                filled += part.size
            return filled

        futures = [self._pool.submit(pull, pid) for pid in self._calls]
        for pid, future in zip(self._calls, futures, strict=True):
            got = future.result()
            if got != length:
                raise RuntimeError(f"raw party {pid} sent {got} words, expected {length}")
        return total

    def round_trip(self, payload: np.ndarray, reply_words: int) -> np.ndarray:
        """Send ``payload`` (float64) to every party at once; sum their ``reply_words`` replies.

        The shape of one training round (the coordinator's ``Contribute`` call: the round input
        out, a share of ``reply_words`` words back from each party), without the protocol.
        """
        request = np.array([reply_words], dtype=_REPLY_WORDS).tobytes()
        request += np.ascontiguousarray(payload, dtype=_LE_F64).tobytes()
        total = np.zeros(reply_words, dtype=np.float64)
        lock = threading.Lock()

        def call(pid: str) -> int:
            filled = 0
            for data in self._round_trips[pid](request, timeout=self.timeout):
                part = np.frombuffer(data, dtype=_LE_F64)
                with lock:
                    window = total[filled : filled + part.size]
                    np.add(window, part, out=window)
                filled += part.size
            return filled

        futures = [self._pool.submit(call, pid) for pid in self._round_trips]
        for pid, future in zip(self._round_trips, futures, strict=True):
            got = future.result()
            if got != reply_words:
                raise RuntimeError(f"raw party {pid} sent {got} words, expected {reply_words}")
        return total


def expected_round_trip(parties: int, payload_words: int, reply_words: int) -> np.ndarray:
    """What :meth:`RawAggregator.round_trip` returns when every party's reply arrived intact."""
    return parties * (np.arange(reply_words, dtype=np.float64) + payload_words)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="run one raw party server")
    p_serve.add_argument("--party-id", required=True)
    p_serve.add_argument("--tls-dir", type=Path, required=True)
    p_serve.add_argument("--ready-file", type=Path, required=True)
    p_serve.add_argument("--data", action="append", default=[], help="NAME=PATH.npy")
    args = parser.parse_args(argv)
    data = {}
    for item in args.data:
        name, _, path = item.partition("=")
        data[name] = Path(path)
    serve(args.party_id, args.tls_dir, data, args.ready_file)


if __name__ == "__main__":
    main()
