"""`trainwright convert yolox-official IN OUT`: another project's checkpoint written in trainwright's layout."""

from __future__ import annotations

from pathlib import Path

from trainwright.checkpoints import read_ckpt_state_dict
from trainwright.logging.files import atomic_torch_save
from trainwright.models.conversion import convert_official_yolox

__all__ = ["FORMATS", "run_convert"]

FORMATS = ("yolox-official",)


def run_convert(fmt: str, input_path: str, output_path: str, architecture: str | None = None, *,
                overwrite: bool = False, allow_unsafe_pickle: bool = False) -> int:
    """Convert ``input_path`` (format ``fmt``) into a trainwright checkpoint at ``output_path``, written atomically.

    The input is only read; an existing output is replaced only with ``overwrite``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown checkpoint format {fmt!r}; known: {', '.join(FORMATS)}")
    source, target = Path(input_path), Path(output_path)
    if not source.is_file():
        raise FileNotFoundError(f"checkpoint not found: {source}")
    if target.exists() and target.resolve() == source.resolve():
        raise ValueError(f"OUT must differ from IN ({source}): the input is never overwritten")
    if target.is_dir():
        raise IsADirectoryError(f"OUT {target} is a folder; give the file to write")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass --overwrite to replace it")
    checkpoint = read_ckpt_state_dict(source, allow_unsafe_pickle=allow_unsafe_pickle)
    result = convert_official_yolox(checkpoint, architecture, source=str(source))
    atomic_torch_save(result.checkpoint, target)
    print(f"{source} -> {target}: official YOLOX as {result.architecture}, {result.num_classes} classes, "
          f"{len(result.checkpoint['net'])} tensors")
    print(f"use it with trainwright.models.get({result.architecture!r}, num_classes=N, checkpoint_path={str(target)!r}) "
          f"or the recipe key model.checkpoint_path={target}")
    return 0
