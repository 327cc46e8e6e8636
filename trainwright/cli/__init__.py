"""The `trainwright` command line: one sub-command per module of this package."""

from __future__ import annotations

import argparse
import os
import sys

from trainwright.cli.export_args import add_export_parser, add_registry_parser  # argparse only: no torch import

DEBUG_ENV = "TRAINWRIGHT_DEBUG"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trainwright", description="Train and evaluate detection models.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser(
        "train", help="train a model as a recipe describes (default: YOLOX-N on the built-in shapes data)",
        usage="trainwright train [-h] [--list-recipes] [RECIPE] [key=value ...]",
        description="Train as RECIPE (a shipped recipe name or a YAML file) describes, with any key overridden "
                    "as key=value (OmegaConf dotted keys, YAML values), e.g. training_params.max_epochs=3. "
                    "Prints the experiment directory as the last line.")
    train.add_argument("args", nargs="*", metavar="RECIPE key=value",
                       help="recipe name or path (default: yolox_n_shapes), then overrides")
    train.add_argument("--list-recipes", action="store_true", help="list the shipped recipes and exit")
    train.set_defaults(handler=_run_train)

    evaluate = sub.add_parser(
        "evaluate", help="COCO summary of a checkpoint on a COCO-format dataset",
        description="Evaluate CHECKPOINT on a COCO-format dataset (default: the validation split it was trained "
                    "on) and print the twelve COCO bbox numbers.")
    evaluate.add_argument("checkpoint", help="a .pth file written by trainwright train")
    evaluate.add_argument("--images", help="images folder of the dataset (with --annotations)")
    evaluate.add_argument("--annotations", help="COCO instances JSON of the dataset (with --images)")
    evaluate.add_argument("--json", action="store_true", help="print the summary as JSON")
    evaluate.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default 16)")
    evaluate.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    evaluate.set_defaults(handler=_run_evaluate)

    predict = sub.add_parser(
        "predict", help="draw and print a checkpoint's detections on images",
        description="Run CHECKPOINT on each IMAGE, write the images with their boxes drawn to --output and "
                    "print the detections (x1 y1 x2 y2 in pixels of the original image).")
    predict.add_argument("checkpoint", help="a .pth file written by trainwright train, or an .onnx file written by "
                                            "trainwright export (run with onnxruntime)")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    predict.add_argument("--output", default="predictions", help="folder for the drawn images (default: predictions)")
    predict.add_argument("--conf", type=float, default=0.3, help="confidence threshold (default 0.3)")
    predict.add_argument("--iou", type=float, default=None, help="NMS IoU threshold (default: the training one)")
    predict.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    predict.set_defaults(handler=_run_predict)

    add_export_parser(sub)
    add_registry_parser(sub)

    demo = sub.add_parser("demo", help="post-process a synthetic YOLOX output with our NMS next to torchvision's")
    demo.set_defaults(handler=_run_demo)
    return parser


def _run_train(args: argparse.Namespace) -> int:
    from trainwright.cli.train import run_train
    from trainwright.recipes import list_recipes

    if args.list_recipes:
        print("\n".join(list_recipes()))
        return 0
    return run_train(args.args)


def _run_evaluate(args: argparse.Namespace) -> int:
    from trainwright.cli.evaluate import run_evaluate

    return run_evaluate(args.checkpoint, args.images, args.annotations, as_json=args.json,
                        batch_size=args.batch_size, device=args.device)


def _run_predict(args: argparse.Namespace) -> int:
    from trainwright.cli.predict import run_predict

    return run_predict(args.checkpoint, args.images, args.output, conf=args.conf, iou=args.iou, device=args.device)


def _run_demo(args: argparse.Namespace) -> int:
    from trainwright.cli.demo import run_demo

    return run_demo()


def _user_errors() -> tuple[type[BaseException], ...]:
    import pickle

    from trainwright.config import UnusedConfigParamException

    # pickle.UnpicklingError: a checkpoint refused by the weights-only reader (trainwright.checkpoints);
    # ImportError: an optional extra (export, simplify, mlflow) that is not installed.
    return (UnusedConfigParamException, OSError, ValueError, TypeError, KeyError, pickle.UnpicklingError, ImportError)


def main(argv: list[str] | None = None) -> int:
    # OpenMP threads that spin while waiting stall a CPU shared with DataLoader workers; must precede `import torch`.
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except BrokenPipeError:  # output piped into a reader that stopped early (e.g. `| head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except _user_errors() as err:
        if os.environ.get(DEBUG_ENV):
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"trainwright {args.command}: error: {message}\n(set {DEBUG_ENV}=1 to see the traceback)",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
