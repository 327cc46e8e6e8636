"""DetectionTargetsFormat and get_cls_posx_in_target."""

import pytest

from trainwright.ops.targets import DetectionTargetsFormat, get_cls_posx_in_target


def test_every_layout_exists_with_and_without_normalisation():
    names = {f.name for f in DetectionTargetsFormat}
    for box in ("XYXY", "CXCYWH"):
        assert {f"LABEL_{box}", f"{box}_LABEL", f"LABEL_NORMALIZED_{box}", f"NORMALIZED_{box}_LABEL"} <= names
    assert len(names) == 8


@pytest.mark.parametrize("target_format", list(DetectionTargetsFormat))
def test_class_position(target_format):
    expected = 0 if target_format.name.startswith("LABEL") else -1
    assert get_cls_posx_in_target(target_format) == expected


def test_class_position_by_name_and_bad_input():
    assert get_cls_posx_in_target("LABEL_CXCYWH") == 0
    assert get_cls_posx_in_target("NORMALIZED_XYXY_LABEL") == -1
    with pytest.raises(ValueError, match="'XYWH'"):
        get_cls_posx_in_target("XYWH")
    with pytest.raises(TypeError, match="int"):
        get_cls_posx_in_target(3)
