"""Examples shown in the API schema and docs (drf-spectacular OpenApiExample)."""

from drf_spectacular.utils import OpenApiExample

CLASSIFICATION = {
    "id": "6b029d7fddfa8998e9372602",
    "status": "done",
    "created_at": "2026-11-22T08:12:30.120Z",
    "finished_at": "2026-11-22T08:12:30.410Z",
    "original_filename": "garden-cat.jpg",
    "source_url": "",
    "width": 4032,
    "height": 3024,
    "format": "JPEG",
    "image_url": "http://127.0.0.1:8000/api/v1/classifications/6b029d7fddfa8998e9372602/image/",
    "model_version": "cifar10 v1",
    "top_label": "cat",
    "top_probability": 0.91,
    "uncertain": False,
    "predictions": [
        {"label": "cat", "probability": 0.91},
        {"label": "dog", "probability": 0.06},
        {"label": "deer", "probability": 0.01},
    ],
    "class_names": [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ],
    "error": "",
    "corrected_label": "",
}
QUEUED = {
    **CLASSIFICATION,
    "status": "queued",
    "finished_at": None,
    "model_version": "",
    "top_label": "",
    "top_probability": None,
    "predictions": [],
    "class_names": [],
}
USER = {
    "id": "6b0299a871ec207ab2050aed",
    "username": "dora",
    "email": "dora@example.com",
    "first_name": "",
    "last_name": "",
    "date_joined": "2026-11-22T08:00:00Z",
}
SHARE = {
    "id": "6b02a1c2ddfa8998e9372700",
    "owner": "dora",
    "grantee": "bob",
    "created_at": "2026-11-22T08:20:00Z",
}
MODEL = {
    "id": "6b0290ffddfa8998e9372001",
    "name": "cifar10",
    "version": 1,
    "architecture": "whitened_convnet",
    "class_names": [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ],
    "input_height": 32,
    "input_width": 32,
    "validation_accuracy": 0.9,
    "is_active": True,
    "created_at": "2026-11-22T07:00:00Z",
    "activated_at": "2026-11-22T07:00:01Z",
}


def response(name, value, status="200"):
    return OpenApiExample(name, value=value, response_only=True, status_codes=[status])


def request(name, value):
    return OpenApiExample(name, value=value, request_only=True)


REGISTER = [
    request(
        "New account",
        {"username": "dora", "email": "dora@example.com", "password": "a long passphrase"},
    ),
    response("Created", USER, "201"),
]
TOKEN = [
    request("Credentials", {"username": "dora", "password": "a long passphrase"}),
    response("Token", {"token": "q3Zb6x0u1gk8m2NTf0xq4Jb3cWnV3d1rS5aYp9QeKzE"}),
]
ME = [response("Profile", USER)]
UPLOAD = [
    request("By URL", {"image_url": "https://example.com/cat.jpg"}),
    response("Queued", QUEUED, "202"),
]
PAGE = [
    response(
        "A page",
        {
            "next": "http://127.0.0.1:8000/api/v1/classifications/?cursor=o%3AMjAy...",
            "previous": None,
            "results": [CLASSIFICATION],
        },
    )
]
DETAIL = [response("Finished", CLASSIFICATION), response("Still queued", QUEUED)]
SHARES = [response("Grants", {"given": [SHARE], "received": []})]
GRANT = [request("Share with bob", {"username": "bob"}), response("Granted", SHARE, "201")]
MODELS = [response("Versions", [MODEL])]
ACTIVE = [
    response("Active model", {**MODEL, "metrics": {"validation": {"accuracy": 0.9, "loss": 0.35}}})
]
