"""Docker executor: actions in containers speaking OpenWhisk's action-proxy protocol (runtimes/ holds the
images' proxy and recipes; executor.py drives the containers)."""
