"""loadgen: the load generator and report tool for pywhisk (and any OpenWhisk-compatible API host).

It reproduces the cold-start, concurrency, mixed-load and capacity experiments of the WebAssembly-vs-Docker
serverless literature (../shared/reference/wow-and-thesis-benchmarks.md §6-8). It is a pure HTTP client: it
imports httpx and talks to the OpenWhisk REST API, never to pywhisk's internals.
"""

__version__ = "0.1.0"
