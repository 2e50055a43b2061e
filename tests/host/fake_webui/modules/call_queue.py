"""Fake of modules/call_queue.py: ``queue_lock``, a non-reentrant lock (a FIFO lock in the WebUI).

Taking it twice in one thread deadlocks the real WebUI; here it raises instead, so a test fails
rather than hangs.
"""

import threading


class NonReentrantLock:
    def __init__(self):
        self._lock = threading.Lock()
        self.owner = None
        self.acquisitions = 0

    def __enter__(self):
        if self.owner == threading.get_ident():
            raise RuntimeError("queue_lock taken twice in one thread: the real WebUI would deadlock here")
        self._lock.acquire()
        self.owner = threading.get_ident()
        self.acquisitions += 1
        return self

    def __exit__(self, *exc):
        self.owner = None
        self._lock.release()

    def held_by_me(self):
        return self.owner == threading.get_ident()


queue_lock = NonReentrantLock()
