"""The tour behind ``python -m sparseopt``: one module per capability.

Each module defines ``TITLE`` (str), ``ORDER`` (int, sort key) and
``run(report)``, where ``report`` is a :class:`sparseopt._tour._report.Report`.
Modules are discovered automatically, so a capability adds its tour by adding
a file here.
"""
