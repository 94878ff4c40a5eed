"""Errors a service raises when it refuses an action. Messages are for people."""


class ActionRefused(Exception):
    """The action is not allowed now; the message says why and what to do."""

    def __init__(self, message: str, *, code: str = "refused") -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return self.message


class PermissionRefused(ActionRefused):
    """The actor's role does not allow this action."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="permission")


class StaleEdit(ActionRefused):
    """Someone else changed the thing since the actor loaded it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="stale")
