"""NonFinitePredictions: rows of a prediction tensor with an inf or NaN value, counted over an epoch."""

import pytest
import torch

from trainwright.metrics import NonFinitePredictions
from trainwright.training.metric_set import MetricSet


def test_counts_rows_with_any_inf_or_nan():
    metric = NonFinitePredictions()
    decoded = torch.ones(2, 5, 7)
    decoded[0, 1, 2] = float("inf")  # an overflowed box width
    decoded[0, 1, 3] = float("inf")  # the same row twice: counted once
    decoded[1, 4, 6] = float("nan")
    decoded[1, 0, 0] = -float("inf")
    metric.update((decoded, ["raw maps"]), torch.zeros(0, 6))
    metric.update(torch.ones(1, 5, 7), None)
    assert int(metric.compute()) == 3 and int(metric.total) == 15
    metric.reset()
    assert int(metric.compute()) == 0


def test_boxes_and_scores_apart_are_counted_per_row():
    """PP-YOLOE's eval output: ((boxes [B, N, 4], scores [B, N, C]), raw)."""
    boxes, scores = torch.ones(2, 4, 4), torch.ones(2, 4, 3)
    boxes[0, 0, 2] = float("inf")
    scores[0, 0, 1] = float("nan")  # same row as the inf box: counted once
    scores[1, 3, 0] = float("nan")
    metric = NonFinitePredictions()
    metric.update(((boxes, scores), ("raw",)), None)
    assert int(metric.compute()) == 2 and int(metric.total) == 8


def test_reported_under_its_name_by_the_trainer_metric_set():
    metrics = MetricSet([NonFinitePredictions()], "cpu")
    metrics.update(torch.full((1, 3, 6), float("nan")), torch.zeros(0, 6))
    assert metrics.compute() == {"NonFinitePredictions": 3.0}


def test_wrong_predictions_are_named():
    with pytest.raises(ValueError, match="NonFinitePredictions expects predictions"):
        NonFinitePredictions().update([None], None)
    with pytest.raises(ValueError, match="NonFinitePredictions expects predictions"):
        NonFinitePredictions().update(((torch.ones(1, 4, 4), torch.ones(1, 5, 3)), None), None)
