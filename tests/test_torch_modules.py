"""Whole-module torch pickles (``torch.save(model)``): torch's own layers are data, anything else is not."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

import aivet
from aivet.analyzers import allowlist
from aivet.analyzers.allowlist import Classification
from aivet.analyzers.pickle_vm import PickleVM
from aivet.evidence import Severity
from aivet.limits import Limits
from tests.fixtures.pickles import Ops

torch = pytest.importorskip("torch")
nn = torch.nn


def test_every_listed_layer_is_a_torch_module_restored_without_init() -> None:
    """The allowlist names only nn.Module subclasses torch defines there, built by object.__new__."""
    for name in sorted(allowlist._TORCH_LAYERS):
        module_name, cls_name = name.rsplit(".", 1)
        cls = getattr(importlib.import_module(module_name), cls_name, None)
        if cls is None:  # a layer an older or newer torch does not have: fails closed, harmless
            continue
        assert inspect.isclass(cls) and issubclass(cls, nn.Module), name
        assert cls.__module__ == module_name and cls.__new__ is object.__new__, name


def test_listed_activations_are_plain_tensor_functions() -> None:
    for name in sorted(allowlist._TORCH_ACTIVATIONS):
        fn = getattr(torch.nn.functional, name.rsplit(".", 1)[1])
        assert callable(fn) and not inspect.isclass(fn), name


def _findings_at_or_above_medium(path: Path) -> list[str]:
    return [f"{f.rule_id} {f.message}" for f in aivet.scan(path).at_or_above(Severity.MEDIUM)]


@pytest.mark.parametrize("protocol", [2, 4])
def test_whole_module_saves_of_torch_layers_are_clean(tmp_path: Path, protocol: int) -> None:
    models = {
        "cnn.pt": nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Dropout()),
        "rnn.pt": nn.LSTM(4, 4, batch_first=True),
        "encoder.pt": nn.TransformerEncoderLayer(8, 2, 16),  # keeps F.relu as an attribute
        "attention.pt": nn.MultiheadAttention(8, 2),
        "embedding.pt": nn.ModuleDict({"e": nn.Embedding(10, 4), "n": nn.LayerNorm(4)}),
    }
    for name, model in models.items():
        torch.save(model, tmp_path / name, pickle_protocol=protocol)
    assert _findings_at_or_above_medium(tmp_path) == []


def test_a_custom_module_class_is_still_reported(tmp_path: Path) -> None:
    """A user's own nn.Module subclass means importing the user's code: that stays a finding."""
    data = Ops(2).glob("mymodels.net", "Net").empty_tuple().raw(b"\x81").empty_dict().build().stop()
    (tmp_path / "model.pkl").write_bytes(data)
    found = _findings_at_or_above_medium(tmp_path)
    assert any("mymodels.net.Net" in f for f in found)


def test_a_layer_called_with_arguments_is_reported() -> None:
    """Linear(100000, 100000) runs __init__, which allocates 40 GB: only the no-argument restore is data."""
    data = Ops(2).glob("torch.nn.modules.linear", "Linear").int(100000).int(100000).raw(b"\x86").reduce().stop()
    result = PickleVM(data, Limits(), ecosystem="torch").run()
    use = result.uses["torch.nn.modules.linear.Linear"]
    assert use.verdict is Classification.UNKNOWN and "arguments" in use.reason


def test_copyreg_reconstructor_of_a_layer_is_data() -> None:
    verdict, _ = allowlist.conditional_verdict(
        "copyreg._reconstructor", ["torch.nn.modules.linear.Linear", "builtins.object", None], False, "torch")
    assert verdict is Classification.SAFE
