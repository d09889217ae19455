"""``python -m mpc`` runs the command line."""

import os
import sys


def _die_with_launcher() -> None:
    """With ``MPC_PARENT_PID`` set by a launcher (``LocalCluster``), die with that process.

    Linux's ``PR_SET_PDEATHSIG`` is set here, after exec, instead of in a ``preexec_fn``:
    Python code running between fork and exec in a process with live gRPC channels can crash
    the child (grpc/grpc#43055), and without a ``preexec_fn`` subprocess spawns with vfork.
    """
    parent = os.environ.pop("MPC_PARENT_PID", "")
    if not parent.isdigit() or sys.platform != "linux":
        return
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        return
    if os.getppid() != int(parent):  # the launcher died before the signal was armed
        raise SystemExit(1)


_die_with_launcher()

from mpc.cli import main  # noqa: E402  (after arming the death signal)

raise SystemExit(main())
