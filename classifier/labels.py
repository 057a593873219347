"""How a class name reads on a page: one way everywhere ("Automobile", "Golden retriever"),
while the API, exports and the model keep the names the model was trained with."""


def display_label(name: str) -> str:
    words = (name or "").replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def displayed(predictions: list[dict]) -> list[dict]:
    """Ranked predictions with their labels as pages show them."""
    return [{**p, "label": display_label(p["label"])} for p in predictions]
