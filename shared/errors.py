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


# The Identus agent names a failure `error:<namespace>:<ClassName>` and titles it with the class
# name split into words; these keep its names where it answers the same situation.


class EntityNotFound(NotFound):
    type = "error:EntityServiceError:EntityNotFound"
    title = "Entity Not Found"


class WalletNotFound(NotFound):
    """An entity names a wallet that does not exist."""

    type = "error:EntityServiceError:WalletNotFound"
    title = "Wallet Not Found"


class DuplicatedWalletId(ServiceError):
    status = 422
    type = "error:WalletManagementServiceError:DuplicatedWalletId"
    title = "Duplicated Wallet Id"


class DuplicatedWalletSeed(ServiceError):
    status = 422
    type = "error:WalletManagementServiceError:DuplicatedWalletSeed"
    title = "Duplicated Wallet Seed"


class DuplicatedEntityId(ServiceError):
    """Identus lets its database refuse this (a 500); here it is a 422, as for wallets."""

    status = 422
    type = "error:EntityServiceError:DuplicatedEntityId"
    title = "Duplicated Entity Id"


class ApiKeyOfAnotherEntity(ServiceError):
    """Registering a key another entity holds: Identus's status and type for it."""

    status = 401
    type = "error:AuthenticationRepositoryError:AuthenticationCompromised"
    title = "Authentication Compromised"


class KeyReused(Conflict):
    """An Idempotency-Key sent again with a different request."""

    type = "error:IdempotencyError:KeyReused"
    title = "Idempotency Key Reused"
