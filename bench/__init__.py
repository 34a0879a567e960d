"""Benchmarks of session-core against its Python peers and against each store's floor.

Run ``python -m bench`` (or ``tox -e bench``); ``python -m bench --help`` lists the options.
"""
