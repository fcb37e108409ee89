"""pywsk: a `wsk`-compatible command line, written as a pure HTTP client of the OpenWhisk REST API."""
