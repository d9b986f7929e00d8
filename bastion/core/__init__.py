"""The protocol core: plain data in, plain data out; no web framework, no storage engine.

`tests/core/test_layering.py` proves that importing this package loads neither Starlette nor SQLAlchemy.
"""
