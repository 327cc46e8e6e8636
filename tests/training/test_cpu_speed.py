"""CPU speed settings of the Trainer: freed memory kept for reuse (no page faults on the next step's tensors) and
a fused optimizer step on CPU."""

import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from trainer_helpers import base_params, make_loaders, tiny_model

from trainwright import Trainer
from trainwright.training.optim import build_optimizer

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the memory setting is glibc's malloc")

# Allocates and frees 64 MiB, then counts the minor page faults of a 48 MiB tensor (12288 pages of 4 KiB): each
# page of freshly mapped memory faults once when first written, heap memory kept from the 64 MiB does not. (48,
# not 64: small allocations in between may take the start of the freed block.)
FAULTS_OF_REUSE = textwrap.dedent("""
    import resource, sys, torch
    def faults_of_a_tensor(mib):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.ones(mib * 2**18)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    {setup}
    faults_of_a_tensor(64)
    print(faults_of_a_tensor(48))
""")


def faults_of_reuse(setup: str, cwd: Path) -> int:
    code = FAULTS_OF_REUSE.format(setup=setup.strip() or "pass")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=300)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


TRAIN_ONE_EPOCH = """
import sys
sys.path.insert(0, {helpers!r})
from trainer_helpers import base_params, make_loaders, tiny_model
from trainwright import Trainer
Trainer("speed", ckpt_root_dir="runs", device="cpu").train(
    tiny_model(), base_params(max_epochs=1, cpu_memory_reuse={value}), *make_loaders(n=8))
"""


@glibc_only
@pytest.mark.parametrize(("value", "reused"), [(None, True), (True, True), (False, False)])
def test_training_on_cpu_keeps_freed_memory_for_reuse_unless_turned_off(tmp_path, value, reused):
    setup = TRAIN_ONE_EPOCH.format(helpers=str(Path(__file__).parent), value=value)
    faults = faults_of_reuse(setup, tmp_path)
    if reused:
        assert faults < 1000
    else:
        assert faults > 8000  # most of the 12288 pages fault: the memory went back to the system


def test_bad_cpu_memory_reuse_value_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="cpu_memory_reuse.*'yes'"):
        Trainer("speed", ckpt_root_dir=tmp_path, device="cpu").train(
            tiny_model(), base_params(max_epochs=1, cpu_memory_reuse="yes"), *make_loaders(n=8))
    assert not (tmp_path / "speed").exists()


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_optimizer_on_cpu_is_fused_and_steps_like_the_per_parameter_one(name):
    def network():  # no bias before the BN: its gradient is rounding noise, which Adam scales up to full steps
        return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 2, 1))

    torch.manual_seed(0)
    model, reference = network(), network()
    reference.load_state_dict(model.state_dict())
    options = {"momentum": 0.9, "weight_decay": 1e-4} if name == "SGD" else {"weight_decay": 1e-4}
    fused = build_optimizer(name, model, 0.01, options, zero_weight_decay_on_bias_and_bn=True)
    plain = build_optimizer(name, reference, 0.01, {**options, "foreach": False}, True)
    assert fused.defaults["fused"] is True and not plain.defaults.get("fused")
    images = torch.randn(2, 3, 8, 8)
    for _ in range(3):
        for net, optimizer in ((model, fused), (reference, plain)):
            optimizer.zero_grad()
            net(images).square().mean().backward()
            optimizer.step()
    for a, b in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_an_implementation_chosen_in_optimizer_params_is_kept():
    model = torch.nn.Linear(2, 2)
    assert build_optimizer("AdamW", model, 0.01, {"foreach": True}, False).defaults.get("fused") is None
    assert build_optimizer("RMSprop", model, 0.01, {}, False).defaults.get("fused") is None


def conv_classifier() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.SiLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1, groups=8), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        torch.nn.Linear(8, 2))  # fmt: skip


def image_loaders():
    g = torch.Generator().manual_seed(0)
    images = torch.randn(16, 3, 12, 12, generator=g)
    labels = (images[:, 0].mean((1, 2)) > 0).long()
    data = torch.utils.data.TensorDataset(images, labels)
    return torch.utils.data.DataLoader(data, batch_size=4), torch.utils.data.DataLoader(data, batch_size=8)


@pytest.mark.parametrize("channels_last", [False, True])
def test_channels_last_changes_the_layout_not_the_training(tmp_path, channels_last):
    """The same run in either layout gives the same weights; the checkpoint holds them in the default layout."""
    reference = conv_classifier()
    Trainer("nchw", ckpt_root_dir=tmp_path, device="cpu").train(
        reference, base_params(max_epochs=2, initial_lr=0.01, seed=3), *image_loaders())
    model = conv_classifier()
    Trainer("layout", ckpt_root_dir=tmp_path, device="cpu").train(
        model, base_params(max_epochs=2, initial_lr=0.01, seed=3, channels_last=channels_last), *image_loaders())
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last) is channels_last
    for a, b in zip(model.state_dict().values(), reference.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    checkpoint = torch.load(tmp_path / "layout" / "ckpt_latest.pth", weights_only=True)
    assert all(t.is_contiguous() for t in checkpoint["net"].values())
    restored = conv_classifier().eval()
    restored.load_state_dict(checkpoint["net"])
    images = image_loaders()[1].dataset.tensors[0]
    torch.testing.assert_close(restored(images), model.eval()(images), rtol=1e-5, atol=1e-6)


def test_bad_channels_last_value_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="channels_last.*'yes'"):
        Trainer("layout", ckpt_root_dir=tmp_path, device="cpu").train(
            conv_classifier(), base_params(max_epochs=1, channels_last="yes"), *image_loaders())
    assert not (tmp_path / "layout").exists()
