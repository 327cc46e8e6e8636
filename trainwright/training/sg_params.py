"""The reference's training parameters that have no effect here, and its YAML forms, adapted before the names are
checked: a SuperGradients 3.1 `default_train_params.yaml` loads as it is.

Each key of `IGNORED_SG_PARAMS` is dropped with one warning naming every such key given (and why it does
nothing); `_target_` mappings that build an empty list (the reference writes `lr_updates` that way) become `[]`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

__all__ = ["IGNORED_SG_PARAMS", "adapt_sg_training_params"]

# key -> why it has no effect in trainwright
IGNORED_SG_PARAMS: dict[str, str] = {
    "launch_tensorboard": "start TensorBoard yourself on the experiment directory",
    "tensorboard_port": "start TensorBoard yourself on the experiment directory",
    "tb_files_user_prompt": "TensorBoard files of an earlier run are kept",
    "save_tensorboard_to_s3": "no upload to S3",
    "log_installed_packages": "the package list is not logged",
    "dataset_statistics": "no dataset statistics are drawn",
    "_convert_": "a Hydra instantiation setting",
    "enable_qat": "no quantization-aware training (Trainer.train ignores it in the reference too)",
    "resume_strict_load": "a resume always loads every weight strictly",
    "kill_ddp_pgroup_on_end": "the process group is left to the launcher",
}

_EMPTY_LIST_TARGETS = ("empty_list",)  # the last component of a `_target_` that builds []


def _from_target(name: str, value: Mapping):
    """The value a `{"_target_": ...}` mapping stands for, or an error naming the parameter."""
    target = str(value["_target_"])
    if target.rsplit(".", 1)[-1] in _EMPTY_LIST_TARGETS and len(value) == 1:
        return []
    raise ValueError(f"training_params.{name} is a Hydra object {dict(value)!r}: build it (hydra.utils.instantiate) "
                     "and pass the object")  # fmt: skip


def adapt_sg_training_params(user: Mapping) -> dict:
    """`user` without the ignored keys (one warning names them) and with `_target_` empty lists as `[]`."""
    ignored = {name: user[name] for name in user if name in IGNORED_SG_PARAMS}
    if ignored:
        listed = "; ".join(f"{name}={value!r} ({IGNORED_SG_PARAMS[name]})" for name, value in ignored.items())
        warnings.warn(f"training_params: SuperGradients parameter(s) without effect in trainwright, ignored: {listed}",
                      UserWarning, stacklevel=4)  # fmt: skip
    adapted = {}
    for name, value in user.items():
        if name in ignored:
            continue
        adapted[name] = _from_target(name, value) if isinstance(value, Mapping) and "_target_" in value else value
    return adapted
