"""Stops fairseq's background batch loaders before the interpreter shuts down.

fairseq's ``BufferedIterator`` fills its queue from a daemon thread
(``fairseq.data.iterators.BackgroundConsumer``). When a run ends in the middle of an
epoch (``--max-update``, an error), that thread may be inside a torch op that has released
the GIL as Python finalizes. Taking the GIL back then ends the thread with
``pthread_exit``, whose unwinding through torch's C++ frames calls ``std::terminate``: the
process prints "terminate called without an active exception" and dies with SIGABRT
after its work is done, so a finished ``fairseq-train`` exits with -6. An exit hook, run
while the interpreter is still whole, lets each live loader finish the batch in hand and
waits for it to end.
"""

import atexit
import logging
import queue
import threading
import time

from fairseq.data.iterators import BackgroundConsumer

logger = logging.getLogger(__name__)

_registered = False


def stop_loaders_at_exit() -> None:
    """Registers ``stop_loaders`` to run at interpreter exit (once per process)."""
    global _registered
    if not _registered:
        atexit.register(stop_loaders)
        _registered = True


def stop_loaders(timeout: float = 60.0) -> None:
    """Makes every live ``BackgroundConsumer`` stop after its current batch and waits
    (at most ``timeout`` seconds in all) for each to end, draining its queue so that it
    never blocks on a full one."""
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if not isinstance(thread, BackgroundConsumer):
            continue
        thread._max_len = 0  # its loop breaks after putting the batch in hand
        while thread.is_alive() and time.monotonic() < deadline:
            try:
                thread._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        if thread.is_alive():
            logger.warning("a background batch loader did not stop within %.0f s", timeout)
