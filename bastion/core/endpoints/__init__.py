"""One module per endpoint: the protocol logic, free of HTTP."""
