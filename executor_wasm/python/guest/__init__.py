"""Sources of the Python runner component (built by ``executor_wasm.python.build``)."""
