"""Commands the modules run on a host, each with a deadline.

An ``xl`` call can hang: xenstored that no longer answers, a device model that never
starts, a hotplug script that waits on a dead storage path. Without a deadline the
run waits with it, and the controller shows a task that never ends. ``run`` stops a
command still running after its timeout, with everything it started in its session,
and raises ``CommandTimeout``, whose message names the command: the module fails with
it, and the run says which call hung.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence

MSG_TIMEOUT = "{command} timed out after {timeout:g} s"
# Seconds to wait for a killed command to be gone; one stuck in the kernel (an ioctl
# to Xen that never returns) cannot be reaped, and is left behind.
REAP_TIMEOUT = 10


def command_line(argv: Sequence[str]) -> str:
    """ARGV as a message shows it: the program's name without its folder, then its arguments."""
    words = [str(word) for word in argv]
    return " ".join([os.path.basename(words[0]), *words[1:]]) if words else ""


class CommandTimeout(RuntimeError):
    """A command ran longer than its timeout and was killed."""

    def __init__(self, argv: Sequence[str], timeout: float) -> None:
        super().__init__(MSG_TIMEOUT.format(command=command_line(argv), timeout=timeout))
        self.argv = [str(word) for word in argv]
        self.timeout = timeout


def _kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL to the command's session, then reap it without reading its output."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    # A child that left the session may still hold the pipes: close them, never read.
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=REAP_TIMEOUT)


def run(argv: Sequence[str], timeout: float) -> tuple[int, str, str]:
    """Run ARGV without a shell or standard input: exit code, stdout and stderr as text.

    CommandTimeout when it still runs after TIMEOUT seconds; FileNotFoundError when the
    program does not exist.
    """
    process = subprocess.Popen(
        [str(word) for word in argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # Its own session: a timeout kills what it started too.
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(process)
        raise CommandTimeout(argv, timeout) from None
    return process.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
