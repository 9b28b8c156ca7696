"""Interleaved timing for the comparison scripts: every contender on the same footing.

Two habits keep ratios honest on a shared machine.  Runs are interleaved in an
order shuffled every round, so no method always follows an allocation-heavy
one and inherits its page faults and cache misses, and a burst of load hits
every contender alike.  Sub-millisecond calls are timed in batches of at least
``min_seconds``: a single 0.2 ms call is at the mercy of one preempted time
slice (a two-thread parallel region waits for its slower thread), which moved
the old median-of-five SpMV ratios by 2x between runs.
"""

import math
import random
import time

import numpy as np

# a warm-up call this long calibrates the batch itself (nothing compiled here
# takes that long, and the slowest anchors are spared a second 10 s call)
_SURELY_SLOW = 5.0


def round_robin(fns, repeat, seed=0, min_seconds=0.0, cpu_times=None, spread=None):
    """Median wall seconds per call of each callable, runs interleaved.

    Parameters
    ----------
    fns : dict of str -> callable
        Contenders; each is called once to warm up (JIT, caches, handles).
    repeat : int
        Rounds; the median is over rounds.
    seed : int
        Seed of the per-round shuffle.
    min_seconds : float
        Each sample is a batch of ``ceil(min_seconds / t_warm)`` calls (at least
        one), ``t_warm`` being a second call's time (the first may have
        compiled; a first call over 5 s stands for itself); the sample is the
        batch time over its length.
    cpu_times : dict, optional
        Filled with the median thread CPU seconds per call
        (``time.thread_time``), which unlike wall time does not count slices
        other jobs take from a single-threaded contender.
    spread : dict, optional
        Filled with each contender's slowest sample over its fastest: a median
        read from samples that spread over 2x or more has met a stall of the
        host (a preempted thread, a page-fault storm) in some rounds.

    Returns
    -------
    dict of str -> float
    """
    batch = {}
    for name, f in fns.items():
        t0 = time.perf_counter()
        f()
        t_warm = time.perf_counter() - t0
        if min_seconds > 0 and t_warm < _SURELY_SLOW:  # it may have compiled
            t0 = time.perf_counter()
            f()
            t_warm = time.perf_counter() - t0
        batch[name] = max(1, math.ceil(min_seconds / max(t_warm, 1e-9)))
    wall = {name: [] for name in fns}
    cpu = {name: [] for name in fns}
    order = list(fns)
    rnd = random.Random(seed)
    for _ in range(repeat):
        rnd.shuffle(order)
        for name in order:
            f, n = fns[name], batch[name]
            c0 = time.thread_time()
            t0 = time.perf_counter()
            for _ in range(n):
                f()
            wall[name].append((time.perf_counter() - t0) / n)
            cpu[name].append((time.thread_time() - c0) / n)
    if spread is not None:
        spread.clear()
        spread.update({name: max(t) / max(min(t), 1e-12) for name, t in wall.items()})
    if cpu_times is not None:
        cpu_times.clear()
        cpu_times.update({name: float(np.median(t)) for name, t in cpu.items()})
    return {name: float(np.median(t)) for name, t in wall.items()}
