"""``python -m sparseopt``: a tour of every capability on built-in data.

Each section computes something with sparseopt and the same thing with the
reference library (scipy, scikit-learn, POT, ...) and prints both, with the
time each took.  ``python -m sparseopt ot lasso`` runs only the sections whose
module name contains one of the given words.
"""

import importlib
import pkgutil
import sys
import time
import traceback

import sparseopt._tour
from sparseopt._tour._report import Report


def _tour_modules(selected):
    mods = []
    for info in pkgutil.iter_modules(sparseopt._tour.__path__):
        if info.name.startswith("_"):
            continue
        if selected and not any(s in info.name for s in selected):
            continue
        mods.append(importlib.import_module(f"sparseopt._tour.{info.name}"))
    return sorted(mods, key=lambda m: (getattr(m, "ORDER", 100), m.__name__))


def main(argv=None):
    """Run the tour; return a process exit code (1 if any section failed)."""
    argv = sys.argv[1:] if argv is None else argv
    import sparseopt

    print(f"sparseopt {sparseopt.__version__} tour (first calls include Numba compilation)")
    report = Report()
    failed = []
    t_start = time.perf_counter()
    for mod in _tour_modules(argv):
        report.section(mod.TITLE)
        t0 = time.perf_counter()
        try:
            mod.run(report)
        except Exception:
            failed.append(mod.__name__)
            traceback.print_exc()
        report.note(f"section took {time.perf_counter() - t0:.2f} s")
    print(f"\ntour finished in {time.perf_counter() - t_start:.1f} s")
    if failed:
        print("FAILED sections: " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
