"""The algorithms, each written once against the backend object.

Each solver lives in its own module of this subpackage and is re-exported by
the public modules (:mod:`sparseopt.linear_model`, :mod:`sparseopt.ot`, ...).
"""
