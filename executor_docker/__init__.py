"""Docker executor: OpenWhisk action-proxy containers. Arrives with its own issue; nothing here yet."""
