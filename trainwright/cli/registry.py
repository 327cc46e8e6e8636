"""`trainwright registry [--registry URI] list|show|pull`: what a model registry holds."""

from __future__ import annotations

import json

from trainwright.models.registry import check_name, open_registry

__all__ = ["run_registry"]


def _summary(card: dict) -> str:
    metrics = card.get("metrics") or {}
    shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, (int, float)))[:120]
    size = "x".join(str(v) for v in card.get("input_size") or [])
    return f"{card.get('architecture', '?')} {size} {len(card.get('class_names') or [])} classes" + \
        (f"  {shown}" if shown else "")


def run_registry(action: str, uri: str | None, name: str | None = None, version: str | None = None,
                 output: str | None = None, overwrite: bool = False) -> int:
    """Run one registry action and print its result."""
    if name is not None:
        check_name("model name", name)
    if version is not None:
        check_name("version", version)
    registry = open_registry(uri)
    if action == "list":
        versions = registry.list(name)
        if not versions:
            print(f"no model{' ' + repr(name) if name else ''} in {registry!r}")
        for stored in versions:
            print(f"{stored.name}  {stored.version}  {_summary(stored.card) if stored.card else stored.location}")
        return 0
    if action == "show":
        stored = registry.show(name, version)
        print(json.dumps(stored.card, indent=2, sort_keys=True))
        return 0
    stored = registry.show(name, version)
    destination = registry.pull(name, stored.version, output or f"{stored.name}-{stored.version}", overwrite=overwrite)
    print(f"{stored.name} version {stored.version}: {len(stored.card.get('files', {}))} file(s) and model.json, "
          f"SHA-256 checked -> {destination}")
    return 0
