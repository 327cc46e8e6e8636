"""NMS on very many candidates: wall time of the default `non_max_suppression` call, one image.

Each raw row scores above the threshold for exactly one class, so the candidate count is exact. Layouts:
- sparse: one class, small boxes spread over a 20000 x 20000 canvas; almost nothing overlaps, so greedy NMS
  keeps almost every box (the quadratic worst case of the NMS kernel);
- dense: 80 classes, YOLO-like boxes (up to 60 px) on a 640 x 640 image.

    python benchmarks/nms_candidates.py                        # 2e5 and 1e6 candidates, both layouts
    python benchmarks/nms_candidates.py --quick                # 2e4 candidates
    python benchmarks/nms_candidates.py --candidates 1e6 --layout sparse
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import torch

from trainwright.ops.nms import non_max_suppression

LAYOUTS = {"sparse": (1, 20000.0, 10.0), "dense": (80, 640.0, 60.0)}  # classes, canvas, largest box side


def raw_output(candidates: int, layout: str, seed: int = 0) -> torch.Tensor:
    """[1, candidates, 5 + C] rows (cx, cy, w, h, obj, class scores), each above 0.1 for one class only."""
    num_classes, canvas, side = LAYOUTS[layout]
    g = torch.Generator().manual_seed(seed)
    rows = torch.zeros(candidates, 5 + num_classes)
    rows[:, :2] = torch.rand(candidates, 2, generator=g) * canvas
    rows[:, 2:4] = 2 + torch.rand(candidates, 2, generator=g) * (side - 2)
    rows[:, 4] = 0.2 + 0.8 * torch.rand(candidates, generator=g)
    label = torch.arange(candidates) % num_classes
    rows[torch.arange(candidates), 5 + label] = 0.2 + 0.8 * torch.rand(candidates, generator=g)
    return rows[None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2e4 candidates only")
    parser.add_argument("--candidates", type=float, nargs="+", default=None, help="candidate counts (default 2e5 1e6)")
    parser.add_argument("--layout", choices=sorted(LAYOUTS), nargs="+", default=sorted(LAYOUTS))
    args = parser.parse_args(argv)
    torch.set_flush_denormal(True)
    counts = args.candidates or ([2e4] if args.quick else [2e5, 1e6])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; non_max_suppression(raw) with its defaults")
    print(f"{'layout':<7} {'candidates':>10} {'kept':>8} {'seconds':>8}  warning")
    for layout in args.layout:
        for count in counts:
            raw = raw_output(int(count), layout)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                start = time.perf_counter()
                kept = non_max_suppression(raw)[0]
                seconds = time.perf_counter() - start
            note = str(caught[0].message)[:60] + "..." if caught else "-"
            print(f"{layout:<7} {int(count):>10} {0 if kept is None else len(kept):>8} {seconds:>8.2f}  {note}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
