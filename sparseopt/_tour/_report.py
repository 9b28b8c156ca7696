"""Printing helpers for the tour: timings and side-by-side comparisons."""

import time


def timed(fn, *args, repeat=1, **kwargs):
    """Call ``fn`` and return ``(result, seconds)``; with ``repeat > 1`` the median time."""
    times = []
    out = None
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        times.append(time.perf_counter() - t0)
    times.sort()
    return out, times[len(times) // 2]


class Report:
    """Collects rows ``(what, ours, reference, t_ours, t_ref)`` and prints them."""

    def __init__(self, stream=print):
        self._print = stream

    def section(self, title):
        self._print("")
        self._print(f"== {title} ==")

    def note(self, text):
        self._print(f"   {text}")

    def compare(self, what, ours, reference, t_ours=None, t_ref=None, ref_name="reference"):
        """Print one comparison line: our value, the reference value and both timings."""
        def fmt(v):
            if isinstance(v, float):
                return f"{v:.10g}"
            return str(v)

        line = f" - {what}: sparseopt {fmt(ours)} | {ref_name} {fmt(reference)}"
        if t_ours is not None:
            line += f" | time {t_ours * 1e3:.1f} ms"
            if t_ref is not None:
                line += f" vs {t_ref * 1e3:.1f} ms"
        self._print(line)
