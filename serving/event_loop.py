"""An asyncio event loop on its own thread: where the gRPC server and batching run.

Everything else in the server (model polling, REST handlers, signal handling)
runs on ordinary threads and reaches the loop through `run`.
"""
import asyncio
import threading
from typing import Awaitable, Optional, TypeVar

T = TypeVar("T")


class EventLoopThread:
    def __init__(self, name: str = "serving-loop"):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, awaitable: Awaitable[T], timeout: Optional[float] = None) -> T:
        """Runs a coroutine on the loop from another thread and returns its result."""
        return asyncio.run_coroutine_threadsafe(awaitable, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=60)
        if not self._thread.is_alive():
            self.loop.close()
