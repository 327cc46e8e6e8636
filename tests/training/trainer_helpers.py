"""Tiny data and models for the trainer tests (a uniquely named module: test dirs have no packages)."""

import torch
from torch.utils.data import DataLoader, TensorDataset


class TinyNet(torch.nn.Module):
    """4 -> 8 -> 2 with BatchNorm and dropout, so RNG and buffers matter."""

    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(4, 8)
        self.bn = torch.nn.BatchNorm1d(8)
        self.drop = torch.nn.Dropout(0.2)
        self.fc2 = torch.nn.Linear(8, 2)

    def forward(self, x):
        return self.fc2(self.drop(torch.relu(self.bn(self.fc1(x)))))


def make_loaders(n=32, batch_size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    ds = TensorDataset(x, y)
    return DataLoader(ds, batch_size=batch_size, shuffle=True), DataLoader(ds, batch_size=batch_size)


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return TinyNet()


def base_params(**overrides):
    params = {
        "max_epochs": 2,
        "initial_lr": 0.1,
        "loss": "cross_entropy",
        "silent_mode": True,
        "optimizer_params": {"momentum": 0.9},
    }
    params.update(overrides)
    return params
