"""Probabilities that mean what they say: temperature scaling, fitted on a model's validation
images, and the figures that show it worked (Guo et al., "On Calibration of Modern Neural
Networks", 2017).

One scalar T rescales the logits, softmax(z / T); from probabilities that is p^(1/T),
renormalised, so it applies to what any runtime returns. T is chosen to minimise the negative
log-likelihood on validation; the negative log-likelihood of z / T is convex in 1/T, so a
golden-section search on it finds the optimum."""

import numpy as np

from classifier.probabilities import apply_temperature, log_probabilities

BINS = 10
# Search range of 1/T: from ten times softer to twenty times sharper.
INVERSE_TEMPERATURE_RANGE = (0.05, 20.0)


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(-log_probabilities(probabilities)[np.arange(len(labels)), labels].mean())


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray, steps: int = 60) -> float:
    """The T that minimises the negative log-likelihood of `labels` (golden-section search)."""
    logs = log_probabilities(probabilities)
    rows = np.arange(len(labels))

    def loss(inverse: float) -> float:
        scaled = logs * inverse
        scaled -= scaled.max(axis=1, keepdims=True)
        return float((np.log(np.exp(scaled).sum(axis=1)) - scaled[rows, labels]).mean())

    ratio = (np.sqrt(5) - 1) / 2
    low, high = np.log(INVERSE_TEMPERATURE_RANGE[0]), np.log(INVERSE_TEMPERATURE_RANGE[1])
    for _ in range(steps):
        left, right = high - ratio * (high - low), low + ratio * (high - low)
        if loss(np.exp(left)) <= loss(np.exp(right)):
            high = right
        else:
            low = left
    return float(1 / np.exp((low + high) / 2))


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS
) -> float:
    """The gap between confidence (top probability) and accuracy, averaged over `bins` equal
    confidence bins weighted by how many answers fall in each."""
    return float(
        sum(
            abs(confidence - accuracy) * count
            for confidence, accuracy, count in binned(probabilities, labels, bins)
        )
        / len(labels)
    )


def binned(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS
) -> list[tuple[float, float, int]]:
    """(mean confidence, accuracy, answers) of each non-empty one of `bins` equal confidence bins."""
    confidence, correct = reliability(probabilities, labels)
    which = np.clip(
        np.digitize(confidence, np.linspace(0, 1, bins + 1)[1:-1], right=True), 0, bins - 1
    )
    return [
        (confidence[which == b].mean(), correct[which == b].mean(), int((which == b).sum()))
        for b in range(bins)
        if (which == b).any()
    ]


def reliability(probabilities: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(top probability, whether the top class is right) of every answer."""
    probabilities = np.asarray(probabilities)
    return probabilities.max(axis=1), (probabilities.argmax(axis=1) == labels).astype(float)


def uncertain_below(
    probabilities: np.ndarray, labels: np.ndarray, precision: float = 0.95
) -> float:
    """The lowest top probability at which the answers at or above it are right at least
    `precision` of the time; answers under it are flagged "uncertain". 1.0 when no threshold
    reaches that precision."""
    confidence, correct = reliability(probabilities, labels)
    order = np.argsort(-confidence, kind="stable")
    ranked = confidence[order]
    running = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    # A threshold accepts every answer of its confidence: only the last of equal ones counts.
    ends = np.flatnonzero(np.r_[ranked[1:] < ranked[:-1], True])
    good = ends[running[ends] >= precision]
    return float(ranked[good[-1]]) if len(good) else 1.0


def calibration_report(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """The temperature, the uncertainty threshold on calibrated probabilities, and ECE and NLL
    before and after."""
    temperature = fit_temperature(probabilities, labels)
    calibrated = apply_temperature(probabilities, temperature)
    return {
        "temperature": temperature,
        "uncertain_below": uncertain_below(calibrated, labels),
        "ece_before": expected_calibration_error(probabilities, labels),
        "ece_after": expected_calibration_error(calibrated, labels),
        "nll_before": negative_log_likelihood(probabilities, labels),
        "nll_after": negative_log_likelihood(calibrated, labels),
        "bins": BINS,
    }
