"""Arguments of `trainwright export` and `trainwright registry` (argparse only: importing this loads no torch)."""

from __future__ import annotations

import argparse

__all__ = ["add_export_parser", "add_registry_parser"]


def add_export_parser(sub) -> None:
    export = sub.add_parser(
        "export", help="write a checkpoint's model as an ONNX file (optionally with NMS inside)",
        description="Export CHECKPOINT (its EMA weights when saved) to ONNX: images [B, 3, H, W] -> boxes [B, N, 4] "
                    "and scores [B, N, C], or with --nms detections [B, M, 6] and num_detections [B]. The file is "
                    "run in onnxruntime and compared with PyTorch before it is kept.")
    export.add_argument("checkpoint", help="a .pth file written by trainwright train")
    export.add_argument("--output", default=None, help="the ONNX file (default: the checkpoint path with .onnx)")
    export.add_argument("--overwrite", action="store_true", help="replace --output when it exists")
    export.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"), default=None,
                        help="input height and width, multiples of the model stride (default: the training size)")
    batch = export.add_mutually_exclusive_group()
    batch.add_argument("--batch", type=int, default=1, help="batch size fixed in the graph (default 1)")
    batch.add_argument("--dynamic-batch", action="store_true", help="leave the batch dimension free")
    export.add_argument("--nms", action="store_true", help="run NMS inside the graph (ONNX NonMaxSuppression)")
    export.add_argument("--conf", type=float, default=0.25, help="NMS confidence threshold (default 0.25)")
    export.add_argument("--iou", type=float, default=0.6, help="NMS IoU threshold (default 0.6)")
    export.add_argument("--max-predictions", type=int, default=100, help="detections kept per image (default 100)")
    export.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17)")
    export.add_argument("--half", action="store_true",
                        help="float16 weights, input and outputs (exported and checked on the CPU)")
    export.add_argument("--simplify", action="store_true", help="simplify the graph with onnxslim or onnxsim")
    export.set_defaults(handler=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from trainwright.cli.export import run_export

    return run_export(args.checkpoint, args.output, args.input_size, batch=args.batch,
                      dynamic_batch=args.dynamic_batch, nms=args.nms, conf=args.conf, iou=args.iou,
                      max_predictions=args.max_predictions, opset=args.opset, half=args.half,
                      simplify=args.simplify, overwrite=args.overwrite)


def add_registry_parser(sub) -> None:
    registry = sub.add_parser(
        "registry", help="list, show and pull the models stored in a model registry",
        description="The model registry: a folder (default $TRAINWRIGHT_REGISTRY or ./registry) or "
                    "mlflow:<tracking URI>.")
    registry.add_argument("--registry", default=None, help="registry folder or mlflow:<tracking URI>")
    actions = registry.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every stored version (of NAME)")
    listing.add_argument("name", nargs="?", default=None, help="only this model")
    show = actions.add_parser("show", help="the model card of a version (default: the latest)")
    show.add_argument("name")
    show.add_argument("version", nargs="?", default=None)
    pull = actions.add_parser("pull", help="copy a version's files into a folder, checking their SHA-256")
    pull.add_argument("name")
    pull.add_argument("version", nargs="?", default=None)
    pull.add_argument("--output", default=None, help="destination folder (default: ./NAME-VERSION)")
    pull.add_argument("--overwrite", action="store_true", help="replace files that exist in the destination")
    registry.set_defaults(handler=_run_registry)


def _run_registry(args: argparse.Namespace) -> int:
    from trainwright.cli.registry import run_registry

    return run_registry(args.action, args.registry, getattr(args, "name", None), getattr(args, "version", None),
                        output=getattr(args, "output", None), overwrite=getattr(args, "overwrite", False))
