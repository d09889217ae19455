"""One MPyC party for bench/peers.py: secure sum of one float64 vector per party.

    PEERS_LENGTH=1000 PEERS_REPEATS=5 python bench/peers_mpyc.py -M3 -I0 -B 11400 --no-log

Started once per party (``-M m -I i``, MPyC's own options; plain TCP on 127.0.0.1, MPyC's
default without ``--ssl``). The length and the number of runs come from the environment
(``PEERS_LENGTH``, ``PEERS_REPEATS``, ``PEERS_LIMIT_S``) so they cannot collide with MPyC's
argument parser. Every party holds ``bench.secure_sum.make_vector(i, L)`` (the vectors the
mpc benchmark uses), encodes it as a secure fixed-point array (``mpc.SecFxp(64, 16)``: 16
fractional bits, as mpc's encoding) and, per run:

1. ``await mpc.barrier()`` -- all parties connected and at the same point (not timed);
2. timer starts: ``mpc.input`` (every party secret-shares its array to all), sum of the
   three shared arrays, ``await mpc.output(total)`` (opened to every party);
3. timer stops when the output is available at this party.

Run 0 is a warm-up. Every party prints one JSON line per run on stdout
(``{"run": k, "ms": ..., "max_abs_error": ...}``, the error against numpy's sum of the same
vectors); the benchmark reads party 0's. A run slower than ``PEERS_LIMIT_S`` at party 0 ends
the loop.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root

from mpyc.runtime import mpc

from bench.secure_sum import make_vector, plaintext_sum


async def main() -> None:
    length = int(os.environ["PEERS_LENGTH"])
    repeats = int(os.environ.get("PEERS_REPEATS", "5"))
    limit_s = float(os.environ.get("PEERS_LIMIT_S", "60"))
    m = len(mpc.parties)
    vectors = [make_vector(i, length) for i in range(m)]
    reference = plaintext_sum(vectors)
    mine = vectors[mpc.pid]
    secfxp = mpc.SecFxp(64, 16)
    await mpc.start()
    for run in range(repeats + 1):
        await mpc.barrier(f"run{run}")
        start = time.perf_counter()
        shared = mpc.input(secfxp.array(mine))
        total = shared[0]
        for other in shared[1:]:
            total = total + other
        values = await mpc.output(total)
        ms = (time.perf_counter() - start) * 1e3
        error = float(np.max(np.abs(np.asarray(values, dtype=np.float64) - reference)))
        print(json.dumps({"run": run, "ms": ms, "max_abs_error": error}), flush=True)
        # Party 0's time decides for everyone, so all parties leave the loop together.
        if await mpc.transfer(ms, senders=0) > limit_s * 1e3:
            break
    await mpc.shutdown()


if __name__ == "__main__":
    mpc.run(main())
