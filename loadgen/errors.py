"""The one exception loadgen raises for conditions a user must fix; the CLI prints it as a one-line error."""


class LoadgenError(Exception):
    """A failure with a message meant for the user (server unreachable, missing action file, a warm "cold" start)."""
