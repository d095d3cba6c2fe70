"""Per-molecule RDKit work in a pool of processes, in chunks, with a progress bar.

RDKit's Python calls hold the GIL, so threads do not help; processes do. Workers are *spawned*, not
forked: the parent runs torch (OpenMP threads), and forking a process with live OpenMP threads can
deadlock the child. With ``n_jobs == 1`` everything runs in the calling process (no start-up cost,
which matters for small sets and tests).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

from medlearn.engine.progress import make_progress

R = TypeVar("R")


def default_jobs() -> int:
    """Worker processes to use by default: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class ChunkPool:
    """A reusable pool (spawned once per metrics call, used for several passes).

    Args:
        n_jobs: worker processes; ``None`` = :func:`default_jobs`, ``1`` = no pool.
        initializer: called once in every worker (and in this process when ``n_jobs == 1``), e.g. to
            compile filter SMARTS once instead of once per chunk.
    """

    def __init__(self, n_jobs: int | None, initializer: Callable[..., None] | None = None,
                 initargs: tuple[Any, ...] = ()) -> None:
        self.n_jobs = default_jobs() if n_jobs is None else max(1, int(n_jobs))
        self._initializer, self._initargs = initializer, initargs
        self._pool: Any = None
        self._initialized_here = False

    def __enter__(self) -> ChunkPool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def _ensure_pool(self) -> Any:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = context.Pool(self.n_jobs, self._initializer, self._initargs)
        return self._pool

    def map_chunks(self, func: Callable[[Sequence[Any]], R], items: Sequence[Any], chunk_size: int,
                   description: str) -> list[R]:
        """``func`` applied to consecutive chunks of ``items``; one result per chunk, in order."""
        chunks = [items[i:i + chunk_size] for i in range(0, len(items), chunk_size)]
        results: list[R] = []
        with make_progress() as progress:
            task = progress.add_task(description, total=len(items), status="")
            if self.n_jobs == 1 or len(chunks) <= 1:
                if not self._initialized_here and self._initializer is not None:
                    self._initializer(*self._initargs)
                    self._initialized_here = True
                mapped = map(func, chunks)
            else:
                mapped = self._ensure_pool().imap(func, chunks)
            for chunk, result in zip(chunks, mapped):
                results.append(result)
                progress.advance(task, len(chunk))
        return results
