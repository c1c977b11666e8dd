"""How the local stand-ins stop on SIGTERM and SIGINT (Ctrl-C), whatever their threads are doing.

A signal sent to a process (``kill PID``, Ctrl-C) is delivered to any one of its threads that does not block it,
and a busy thread (an AMQP reactor serving links, an event loop answering requests) is the likeliest to take it.
CPython runs Python-level handlers on the main thread only, when that thread next executes bytecode; if the
kernel hands the signal to another thread, the C-level handler merely flags it. A main thread blocked in an
untimed wait (``threading.Event.wait()``, ``Thread.join()``) is then never woken, and the process outlives
SIGTERM until it is killed.

So the stand-ins' own threads start with SIGINT and SIGTERM blocked (:func:`start_thread`): those signals can
only reach the main thread. A main thread that has nothing else to do takes them synchronously with
:func:`wait_for_stop_signal` (``sigwait``), which needs no handler and cannot miss a signal that arrived early.
An asyncio main thread needs nothing more: ``loop.add_signal_handler`` wakes the loop through its wakeup fd.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_CAN_MASK = hasattr(signal, "pthread_sigmask") and hasattr(signal, "sigwait")


@contextlib.contextmanager
def stop_signals_blocked() -> Iterator[None]:
    """Block SIGINT and SIGTERM in the calling thread while the body runs.

    Threads started in the body inherit the mask and keep it, so the process's stop signals never land on them.
    """
    if not _CAN_MASK:
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def start_thread(thread: threading.Thread) -> threading.Thread:
    """``thread.start()``, with SIGINT and SIGTERM blocked in the new thread for its whole life."""
    with stop_signals_blocked():
        thread.start()
    return thread


def block_stop_signals() -> None:
    """Block SIGINT and SIGTERM in the calling thread (and in every thread it starts afterwards) so that
    :func:`wait_for_stop_signal` takes them; call it before starting anything."""
    if _CAN_MASK:
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def wait_for_stop_signal() -> int:
    """Wait until SIGINT or SIGTERM arrives and return its number.

    After :func:`block_stop_signals` the signal waits, pending, until it is taken here, even when it arrived
    before this call. Later signals stay pending and are discarded when the process exits, so a second Ctrl-C
    cannot interrupt the clean-up. Where signal masks do not exist (Windows), handlers and a polled event are used.
    """
    if _CAN_MASK:
        return signal.sigwait(STOP_SIGNALS)
    received: list[int] = []
    done = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        received.append(signum)
        done.set()

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        while not done.wait(0.2):  # timed, so the main thread runs the handler even if another thread took it
            pass
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    return received[0]


__all__ = ["STOP_SIGNALS", "block_stop_signals", "start_thread", "stop_signals_blocked", "wait_for_stop_signal"]
