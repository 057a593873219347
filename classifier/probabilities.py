"""What serving does to a model's probabilities before anyone sees them: temperature scaling
with the version's fitted temperature (mltrain.keras.calibration fits it). NumPy only: the web process
imports this too."""

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
