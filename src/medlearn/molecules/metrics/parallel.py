"""Per-molecule RDKit work in a pool of processes, in chunks, with a progress bar.

RDKit's Python calls hold the GIL, so threads do not help; processes do. Workers are *spawned*, not
forked: the parent runs torch (OpenMP threads), and forking a process with live OpenMP threads can
deadlock the child. With ``processes == 0`` everything runs in the calling process (no start-up cost,
which matters for small sets and tests). Work can be submitted and collected later, so that the
parent computes something else (ChemNet) meanwhile.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Generic, TypeVar

from medlearn.engine.progress import make_progress

R = TypeVar("R")


def default_jobs() -> int:
    """CPUs this process may run on (the default ``n_jobs``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class PendingChunks(Generic[R]):
    """Chunks submitted to a :class:`ChunkPool`; :meth:`collect` waits for them in order."""

    def __init__(
        self, func: Callable[[Sequence[Any]], R], chunks: list[Sequence[Any]], results: list[Any] | None
    ) -> None:
        self._func, self._chunks, self._async = func, chunks, results

    def done(self) -> bool:
        """True when every chunk has finished (always False for in-process work, which runs on collect)."""
        return self._async is not None and all(r.ready() for r in self._async)

    def collect(self, description: str) -> list[R]:
        """The results, one per chunk in order, with a progress bar counting items."""
        results: list[R] = []
        with make_progress() as progress:
            task = progress.add_task(description, total=sum(len(c) for c in self._chunks), status="")
            for i, chunk in enumerate(self._chunks):
                results.append(self._func(chunk) if self._async is None else self._async[i].get())
                progress.advance(task, len(chunk))
        return results


class ChunkPool:
    """A pool spawned once per metrics call and used for several passes.

    Args:
        processes: worker processes; ``0`` runs the work in this process when it is collected.
        initializer: called once in every worker (and in this process for in-process work), e.g. to
            compile filter SMARTS once instead of once per chunk.
    """

    def __init__(
        self, processes: int, initializer: Callable[..., None] | None = None, initargs: tuple[Any, ...] = ()
    ) -> None:
        self.processes = max(0, int(processes))
        self._initializer, self._initargs = initializer, initargs
        self._pool: Any = None
        if self.processes == 0 and initializer is not None:
            initializer(*initargs)

    def __enter__(self) -> ChunkPool:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def submit(
        self, func: Callable[[Sequence[Any]], R], items: Sequence[Any], chunk_size: int
    ) -> PendingChunks[R]:
        """Start ``func`` on consecutive chunks of ``items`` (in-process work starts on collect)."""
        chunks = [items[i : i + chunk_size] for i in range(0, len(items), chunk_size)]
        if self.processes == 0 or not chunks:
            return PendingChunks(func, chunks, None)
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = context.Pool(self.processes, self._initializer, self._initargs)
        return PendingChunks(func, chunks, [self._pool.apply_async(func, (chunk,)) for chunk in chunks])

    def map_chunks(
        self, func: Callable[[Sequence[Any]], R], items: Sequence[Any], chunk_size: int, description: str
    ) -> list[R]:
        """``func`` applied to consecutive chunks of ``items``; one result per chunk, in order."""
        return self.submit(func, items, chunk_size).collect(description)


def pool_processes(n_jobs: int | None) -> int:
    """Worker processes for ``n_jobs`` CPUs: none for 1 (in-process), else ``n_jobs``."""
    n_jobs = default_jobs() if n_jobs is None else max(1, int(n_jobs))
    return 0 if n_jobs == 1 else n_jobs
