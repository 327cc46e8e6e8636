"""Reading a COCO instances file into checked columns: every required key, id and reference is validated.

Each problem is a DatasetError naming the file and the offending image, annotation or category id (or its
position in its list when the id itself is what is wrong). The columns keep the file's order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from trainwright.data.errors import DatasetError, examples

__all__ = ["CocoTables", "load_json", "read_coco_tables"]

_MISSING = object()


@dataclass(frozen=True)
class CocoTables:
    """What detection needs from a COCO instances file, as columns.

    image_ids (int64 [I]), file_names (list[str] [I]), widths and heights (int64 [I], as the file states them);
    annotation_ids, annotation_image_ids, annotation_category_ids (int64 [A]), boxes_xywh (float64 [A, 4],
    finite), is_crowd (bool [A]); category_ids (list[int], ascending) and class_names (list[str], same order).
    """

    image_ids: np.ndarray
    file_names: list[str]
    widths: np.ndarray
    heights: np.ndarray
    annotation_ids: np.ndarray
    annotation_image_ids: np.ndarray
    annotation_category_ids: np.ndarray
    boxes_xywh: np.ndarray
    is_crowd: np.ndarray
    category_ids: list[int]
    class_names: list[str]


def load_json(path: str | os.PathLike):
    """The parsed JSON file at ``path``; DatasetError with the line and column of a syntax error."""
    if not os.path.isfile(path):
        if os.path.isdir(path):
            raise IsADirectoryError(f"{os.fspath(path)} is a directory, not a COCO annotations file")
        raise FileNotFoundError(f"annotations file not found: {os.fspath(path)}")
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as err:
        raise DatasetError(path, f"invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from err
    except UnicodeDecodeError as err:
        raise DatasetError(path, f"not UTF-8 text (byte {err.start} cannot be decoded); "
                                 f"is it a JSON annotation file?") from err


def read_coco_tables(path: str | os.PathLike) -> CocoTables:
    """Read and check the COCO instances file at ``path`` (see the module docstring)."""
    data = load_json(path)
    if not isinstance(data, dict):
        hint = " (a list at the top level is a detection results file)" if isinstance(data, list) else ""
        raise DatasetError(path, f"is not a COCO instances file: the top level is a {type(data).__name__}, "
                                 f"not an object with 'images', 'annotations' and 'categories'{hint}")
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise DatasetError(path, f"is not a COCO instances file: no '{key}' key")
    images, annotations = _objects(data, "images", path), _objects(data, "annotations", path)
    if not images:
        raise DatasetError(path, "lists no images ('images' is empty): the split is empty")
    category_ids, class_names = _categories(_objects(data, "categories", path), path)

    image_ids = _integers(images, "id", path, lambda i: f"image #{i} of 'images'")
    _reject_duplicates(image_ids, path, "image", lambda i: repr(images[i].get("file_name")))
    describe_image = _describer("image id", image_ids)
    file_names = _file_names(images, path, describe_image)
    widths = _integers(images, "width", path, describe_image)
    heights = _integers(images, "height", path, describe_image)

    annotation_ids = _integers(annotations, "id", path, lambda i: f"annotation #{i} of 'annotations'")
    _reject_duplicates(annotation_ids, path, "annotation", lambda i: f"image_id {annotations[i].get('image_id')!r}")
    describe_annotation = _describer("annotation id", annotation_ids)
    annotation_image_ids = _integers(annotations, "image_id", path, describe_annotation)
    annotation_category_ids = _integers(annotations, "category_id", path, describe_annotation)
    _reject_unknown(annotation_image_ids, image_ids, annotation_ids, path, "image_id", "images")
    _reject_unknown(annotation_category_ids, np.asarray(category_ids), annotation_ids, path, "category_id",
                    "categories")
    return CocoTables(image_ids, file_names, widths, heights, annotation_ids, annotation_image_ids,
                      annotation_category_ids, _boxes(annotations, path, describe_annotation),
                      _crowd_flags(annotations, path, describe_annotation), category_ids, class_names)


def _objects(data: dict, key: str, path) -> list[dict]:
    """data[key], checked to be a list of JSON objects."""
    rows = data[key]
    if not isinstance(rows, list):
        raise DatasetError(path, f"'{key}' must be a list, got {type(rows).__name__}")
    bad = [i for i, row in enumerate(rows) if not isinstance(row, dict)]
    if bad:
        raise DatasetError(path, f"entry #{bad[0]} of '{key}' is not an object: {str(rows[bad[0]])[:60]!r}")
    return rows


def _describer(what: str, ids: np.ndarray) -> Callable[[int], str]:
    """Position in the list -> 'image id 12' (used once ids are known to be valid)."""
    return lambda i: f"{what} {int(ids[i])}"


def _values(rows: list[dict], key: str, path, describe: Callable[[int], str]) -> list:
    """rows[i][key] for every row; DatasetError naming the first row without the key and how many lack it."""
    values = [row.get(key, _MISSING) for row in rows]
    missing = [i for i, value in enumerate(values) if value is _MISSING]
    if missing:
        more = f" ({len(missing)} entries lack it)" if len(missing) > 1 else ""
        raise DatasetError(path, f"{describe(missing[0])} has no '{key}' key{more}")
    return values


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integers(rows: list[dict], key: str, path, describe: Callable[[int], str]) -> np.ndarray:
    """int64 [N] column of an integer-valued key (integral floats such as 3.0 are accepted)."""
    values = _values(rows, key, path, describe)
    array = np.asarray(values) if values else np.zeros(0, np.int64)
    if array.dtype.kind in "iu" and array.ndim == 1 and not any(type(v) is bool for v in values):
        return array.astype(np.int64)
    bad = [i for i, v in enumerate(values) if not (_is_number(v) and float(v).is_integer() and abs(v) < 2**63)]
    if bad:
        raise DatasetError(path, f"{describe(bad[0])} has {key}={values[bad[0]]!r}; it must be an integer")
    return np.asarray(values, dtype=np.float64).astype(np.int64)


def _reject_duplicates(ids: np.ndarray, path, what: str, detail: Callable[[int], str]) -> None:
    """DatasetError naming the first id that occurs twice and the details of both entries."""
    order = np.argsort(ids, kind="stable")
    repeated = np.flatnonzero(ids[order][1:] == ids[order][:-1])
    if repeated.size == 0:
        return
    first, second = int(order[repeated[0]]), int(order[repeated[0] + 1])
    count = np.unique(ids[order][repeated]).size
    more = f" ({count} ids are repeated)" if count > 1 else ""
    raise DatasetError(path, f"duplicate {what} id {int(ids[first])}: entries #{first} ({detail(first)}) and "
                             f"#{second} ({detail(second)}) of '{what}s' share it{more}; ids must be unique")


def _reject_unknown(refs: np.ndarray, known: np.ndarray, annotation_ids: np.ndarray, path, key: str,
                    section: str) -> None:
    """DatasetError naming the first annotation whose ``key`` is not an id of ``section``."""
    unknown = ~np.isin(refs, known)
    if not unknown.any():
        return
    first = int(np.argmax(unknown))
    count = int(unknown.sum())
    more = f" ({count} annotations refer to {key}s {examples(np.unique(refs[unknown]).tolist())})" if count > 1 else ""
    raise DatasetError(path, f"annotation id {int(annotation_ids[first])} has {key} {int(refs[first])}, which is "
                             f"not an id in '{section}'{more}")


def _categories(rows: list[dict], path) -> tuple[list[int], list[str]]:
    """Category ids ascending (class index = position) and their names (the id as text when unnamed)."""
    if not rows:
        raise DatasetError(path, "'categories' is empty; a detection dataset needs at least one class")
    ids = _integers(rows, "id", path, lambda i: f"category #{i} of 'categories'")
    _reject_duplicates(ids, path, "category", lambda i: repr(rows[i].get("name")))
    order = np.argsort(ids, kind="stable")
    return [int(ids[i]) for i in order], [str(rows[i].get("name", int(ids[i]))) for i in order]


def _file_names(rows: list[dict], path, describe: Callable[[int], str]) -> list[str]:
    """The non-empty ``file_name`` string of every image."""
    names = _values(rows, "file_name", path, describe)
    bad = [i for i, name in enumerate(names) if not isinstance(name, str) or not name.strip()]
    if bad:
        raise DatasetError(path, f"{describe(bad[0])} has file_name={names[bad[0]]!r}; it must be a file name")
    return names


def _boxes(rows: list[dict], path, describe: Callable[[int], str]) -> np.ndarray:
    """float64 [A, 4] bbox column (x, y, width, height); every entry four finite numbers."""
    values = _values(rows, "bbox", path, describe)
    if not values:
        return np.zeros((0, 4), np.float64)
    try:
        array = np.asarray(values)
        ok = array.dtype.kind in "iuf" and array.shape == (len(values), 4)
    except ValueError:  # ragged
        ok = False
    if not ok:
        bad = next(i for i, v in enumerate(values)
                   if not (isinstance(v, list) and len(v) == 4 and all(_is_number(x) for x in v)))
        raise DatasetError(path, f"{describe(bad)} has bbox={values[bad]!r}; it must be [x, y, width, height] "
                                 f"(4 numbers)")
    boxes = array.astype(np.float64)
    finite = np.isfinite(boxes).all(axis=1)
    if not finite.all():
        bad = int(np.argmin(finite))
        raise DatasetError(path, f"{describe(bad)} has bbox={values[bad]!r}; coordinates must be finite")
    return boxes


def _crowd_flags(rows: list[dict], path, describe: Callable[[int], str]) -> np.ndarray:
    """bool [A] ``iscrowd`` column (0 when absent; 0, 1, false or true otherwise)."""
    values = [row.get("iscrowd", 0) for row in rows]
    bad = [i for i, v in enumerate(values) if v not in (0, 1) or not isinstance(v, (int, bool))]
    if bad:
        raise DatasetError(path, f"{describe(bad[0])} has iscrowd={values[bad[0]]!r}; it must be 0 or 1")
    return np.asarray(values, dtype=bool).reshape(-1)
