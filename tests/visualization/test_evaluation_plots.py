"""The evaluation plots: PNG bytes for few, many and no classes, without matplotlib warnings."""

import warnings

import pytest
import torch

from trainwright.visualization.evaluation_plots import confusion_matrix_png, f1_curve_png, pr_curve_png

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("num_classes", [0, 3, 25])
def test_plots_are_png_for_any_number_of_classes(num_classes):
    names = [f"class {i}" for i in range(num_classes)]
    recall = torch.linspace(0, 1, 101, dtype=torch.float64)
    precision = torch.rand(num_classes, 101, dtype=torch.float64).sort(1, descending=True).values
    confidences = torch.linspace(0, 1, 1001, dtype=torch.float64)
    f1 = torch.rand(num_classes, 1001, dtype=torch.float64)
    matrix = torch.rand(num_classes + 1, num_classes + 1, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pngs = [pr_curve_png(recall, precision, names, precision.mean(1)), f1_curve_png(confidences, f1, names),
                confusion_matrix_png(matrix / matrix.sum(0), names, 0.25, 0.5)]
    assert all(png[:8] == PNG and len(png) > 1000 for png in pngs)
