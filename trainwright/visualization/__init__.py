"""Drawing model outputs: detection boxes on images."""

from trainwright.visualization.detection import (
    DetectionVisualization,
    class_colors,
    drawable_boxes,
    undo_image_preprocessing,
    write_images,
)

__all__ = ["DetectionVisualization", "class_colors", "drawable_boxes", "undo_image_preprocessing", "write_images"]
