"""CloudStack API errors: HTTP status = errorcode; cserrorcode names the Java exception class.

Codes: apache/cloudstack api/src/main/java/org/apache/cloudstack/api/ApiErrorCode.java. A sync
error is ``ApiServer.handleRequest``'s mapping of the exception (InvalidParameterValueException ->
431, PermissionDeniedException -> 531, ...) with the exception's CSExceptionErrorCode; an async
job's error is what ``ApiAsyncJobDispatcher.runJob`` records (see :func:`job_error`).
"""

from __future__ import annotations

# ApiErrorCode values used by the management server.
UNAUTHORIZED = 401
METHOD_NOT_ALLOWED = 405
PARAM_ERROR = 431
UNSUPPORTED_ACTION_ERROR = 432
INTERNAL_ERROR = 530
ACCOUNT_ERROR = 531
INSUFFICIENT_CAPACITY_ERROR = 533
RESOURCE_UNAVAILABLE_ERROR = 534
RESOURCE_IN_USE_ERROR = 536
NETWORK_RULE_CONFLICT_ERROR = 537

# CSExceptionErrorCode values (the Java exception behind an error).
CS_SERVER_API = 9999
CS_CLOUD_RUNTIME = 4250
CS_INVALID_PARAMETER_VALUE = 4350
CS_NETWORK_RULE_CONFLICT = 4360
CS_PERMISSION_DENIED = 4365
CS_RESOURCE_UNAVAILABLE = 4380
CS_INSUFFICIENT_CAPACITY = 4325


class ApiError(Exception):
    """An error answer: ``{"<command>response": {uuidList, errorcode, cserrorcode, errortext}}``."""

    def __init__(self, errorcode: int, errortext: str, cserrorcode: int | None = CS_SERVER_API) -> None:
        super().__init__(errortext)
        self.errorcode = errorcode
        self.errortext = errortext
        self.cserrorcode = cserrorcode

    def body(self) -> dict[str, object]:
        out: dict[str, object] = {"uuidList": [], "errorcode": self.errorcode}
        if self.cserrorcode is not None:
            out["cserrorcode"] = self.cserrorcode
        out["errortext"] = self.errortext
        return out


def invalid_value(message: str) -> ApiError:
    """InvalidParameterValueException: 431 / 4350."""
    return ApiError(PARAM_ERROR, message, CS_INVALID_PARAMETER_VALUE)


def missing_param(command: str, name: str) -> ApiError:
    return ApiError(
        PARAM_ERROR, f"Unable to execute API command {command.lower()} due to missing parameter {name}"
    )


def bad_id(command: str, name: str, value: str) -> ApiError:
    return ApiError(
        PARAM_ERROR,
        f"Unable to execute API command {command.lower()} due to invalid value. Invalid parameter {name} "
        f"value={value} due to incorrect long value format, or entity does not exist or due to incorrect "
        "parameter annotation for the field in api cmd class.",
    )


def internal(message: str) -> ApiError:
    """CloudRuntimeException: 530 / 4250."""
    return ApiError(INTERNAL_ERROR, message, CS_CLOUD_RUNTIME)


def conflict(message: str) -> ApiError:
    return ApiError(NETWORK_RULE_CONFLICT_ERROR, message, CS_NETWORK_RULE_CONFLICT)


def permission_denied(message: str) -> ApiError:
    """PermissionDeniedException: 531 / 4365 when raised before the job; 530 inside a job."""
    return ApiError(ACCOUNT_ERROR, message, CS_PERMISSION_DENIED)


def server_api(errorcode: int, message: str) -> ApiError:
    """``throw new ServerApiException(ApiErrorCode.X, message)`` (a command's own failure)."""
    return ApiError(errorcode, message, CS_SERVER_API)


def job_error(exc: ApiError) -> dict[str, object]:
    """The ``jobresult`` of a job that threw ``exc`` (ApiAsyncJobDispatcher.runJob).

    A ServerApiException keeps its code; an InvalidParameterValueException becomes
    ServerApiException(PARAM_ERROR) = 431; any other exception (PermissionDenied, CloudRuntime,
    NetworkRuleConflict, ...) is INTERNAL_ERROR 530 with the exception's message. The
    ExceptionResponse written there has no cserrorcode; jobresultcode is the same code.
    """
    if exc.cserrorcode == CS_SERVER_API:
        code = exc.errorcode
    elif exc.cserrorcode == CS_INVALID_PARAMETER_VALUE:
        code = PARAM_ERROR
    else:
        code = INTERNAL_ERROR
    return {"uuidList": [], "errorcode": code, "errortext": exc.errortext}
