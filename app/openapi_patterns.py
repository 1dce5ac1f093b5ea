"""Patterns the OpenAPI document states for strings the core checks (the subset of its rules
that OpenAPI 3.0 can say)."""

# An absolute http(s) URL with a host: the subset of what the service accepts that OpenAPI 3.0
# can state (no control characters, spaces or credentials).
URL_PATTERN = (
    r"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:[1-9][0-9]{0,3})?(/[!-~]*)?$"
)
TOKEN_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
VISIBLE_ASCII_PATTERN = r"^([!-~]([ -~]*[!-~])?)?$"
