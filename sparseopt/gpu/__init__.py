"""The CuPy GPU backend, imported lazily by :func:`sparseopt.get_backend`.

Importing :mod:`sparseopt` never imports this package or cupy.
"""
