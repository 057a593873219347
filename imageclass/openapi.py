"""drf-spectacular hook: every operation documents the errors the API really answers with,
as `{detail}` (plus field errors for 400), so clients and schema checks know them."""

ERROR = {"$ref": "#/components/schemas/Error"}
ERRORS = {
    "400": "Invalid input: `detail` and/or a list of messages per field.",
    "401": "Missing, invalid or revoked credentials.",
    "404": "No such object, or not one the caller may see.",
    "429": "Too many requests: retry after `Retry-After` seconds.",
}


def add_error_responses(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = {
        "type": "object",
        "properties": {"detail": {"type": "string"}},
        "additionalProperties": {"type": "array", "items": {"type": "string"}},
    }
    for path in result.get("paths", {}).values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            for code, description in ERRORS.items():
                responses.setdefault(
                    code,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": ERROR}},
                    },
                )
            if "post" in path and operation is path["post"]:
                responses.setdefault(
                    "503",
                    {
                        "description": "A backing service is down; retry later.",
                        "content": {"application/json": {"schema": ERROR}},
                    },
                )
    return result
