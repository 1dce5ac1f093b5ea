"""Failures a service reports to its caller; the API renders them as problem documents."""


class ServiceError(Exception):
    status = 500
    type = "error:InternalServerError"
    title = "Internal Server Error"

    def __init__(self, detail: str | None = None):
        super().__init__(detail or self.title)
        self.detail = detail


class InvalidInput(ServiceError):
    status = 400
    type = "BadRequest"
    title = "BadRequest"


class Unauthorized(ServiceError):
    status = 401
    type = "error:AuthenticationError:InvalidCredentials"
    title = "Invalid Credentials"


class NotFound(ServiceError):
    status = 404
    type = "NotFound"
    title = "NotFound"


class Conflict(ServiceError):
    status = 409
    type = "Conflict"
    title = "Conflict"


class TooManyWebhooks(ServiceError):
    status = 422
    type = "error:WalletManagementServiceError:TooManyWebhookError"
    title = "Too Many Webhook Error"
