"""The HTTP layer (Starlette): the only package that knows about requests and responses."""
