"""What serving does to a model's probabilities before anyone sees them: temperature scaling
with the version's fitted temperature (mltrain.keras.calibration fits it), and the score of the
"none of these classes" verdict (mltrain.keras.ood fits its threshold). NumPy only: the web
process imports this too."""

import numpy as np


def log_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """log p, which is the logits up to a constant per answer (a zero probability as 1e-12)."""
    return np.log(np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1.0))


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T): the probabilities the model's logits divided by T would give."""
    if temperature == 1.0:
        return np.asarray(probabilities)
    scaled = log_probabilities(probabilities) / temperature
    scaled -= scaled.max(axis=-1, keepdims=True)
    exponentials = np.exp(scaled)
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


def entropy(probabilities: np.ndarray) -> np.ndarray:
    """The entropy (in nats) of each answer, on the model's own probabilities (before the
    temperature): the out-of-distribution score. A photo of none of the classes spreads its
    probability where a photo of one concentrates it (mltrain.keras.ood fits the threshold)."""
    probabilities = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1.0)
    return -(probabilities * np.log(probabilities)).sum(axis=-1)


def describe_ood(outside: dict) -> str:
    """The model card's and model page's sentence on the "none of these classes" verdict."""
    if outside.get("threshold") is None:
        return "no verdict (no validation answer was right to set its threshold on)."
    caught = (
        f"{outside['outside_flagged']:.0%} of {outside['outside_photos']} photos of other things "
        "that installed packages ship"
        if outside["outside_photos"]
        else "no photo of other things to measure it on"
    )
    return (
        f"answers whose {outside['method']} exceeds {outside['threshold']:.3f} nats are shown as "
        f"none of them; that flags {outside['validation_flagged']:.1%} of the "
        f"{outside['validation_right']} validation answers that are right, and {caught}."
    )
