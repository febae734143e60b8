"""MLflow ``MLmodel``: the loader module, the code directory on sys.path, and pickled flavors.

Facts (MLflow's ``mlflow/pyfunc/__init__.py``, read through the search tool): ``MLmodel`` is read
with ``yaml.safe_load``; ``flavors.python_function.code`` is prepended to ``sys.path``;
``importlib.import_module(loader_module)._load_pyfunc(data_path)`` loads the model.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import aivet
from aivet.evidence import Evidence, Finding, Severity
from tests.fixtures import yaml_files


def scan(tmp_path: Path, files: dict[str, str]) -> Evidence:
    for name, text in files.items():
        path = tmp_path / "model" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return aivet.scan(tmp_path / "model")


def rule(evidence: Evidence, rule_id: str) -> list[Finding]:
    return [f for f in evidence.findings if f.rule_id == rule_id]


def pyfunc(**keys: str) -> str:
    body = "".join(f"    {k}: {v}\n" for k, v in keys.items())
    return f"artifact_path: model\nflavors:\n  python_function:\n{body}    python_version: 3.11.5\nmlflow_version: 2.9.2\n"


def test_clean_sklearn_model_is_only_noted(tmp_path: Path) -> None:
    evidence = scan(tmp_path, {"MLmodel": yaml_files.MLMODEL_SKLEARN, "conda.yaml": yaml_files.MLFLOW_CONDA})
    assert not evidence.at_or_above(Severity.MEDIUM)
    [pickled] = rule(evidence, "MLFLOW-PICKLED-MODEL")
    assert pickled.severity == Severity.LOW and "cloudpickle" in pickled.message
    assert "not in the repository" in pickled.message  # model.pkl was not written here
    assert [a.format for a in evidence.artifacts if a.path == "MLmodel"] == ["mlmodel"]


def test_loader_module_shipped_in_the_code_directory_is_high(tmp_path: Path) -> None:
    evidence = scan(tmp_path, {"MLmodel": pyfunc(code="code", loader_module="my_loader"),
                               "code/my_loader.py": "def _load_pyfunc(path):\n    return path\n"})
    [finding] = rule(evidence, "MLFLOW-LOADER-MODULE")
    assert finding.severity == Severity.HIGH and finding.details["shipped"] == "code/my_loader.py"
    assert finding.location.pointer == "/flavors/python_function/loader_module"
    assert rule(evidence, "MLFLOW-CODE-PATH")[0].severity == Severity.LOW


def test_loader_module_severities(tmp_path: Path) -> None:
    cases = {"os": Severity.HIGH, "somepkg.loader": Severity.MEDIUM, "'not a module!'": Severity.HIGH}
    for module, expected in cases.items():
        evidence = scan(tmp_path / module.strip("'! "), {"MLmodel": pyfunc(loader_module=module)})
        assert [f.severity for f in rule(evidence, "MLFLOW-LOADER-MODULE")] == [expected], module
    evidence = scan(tmp_path / "own", {"MLmodel": pyfunc(loader_module="mlflow.pytorch")})
    assert rule(evidence, "MLFLOW-LOADER-MODULE") == []


def test_code_directory_shadowing_a_common_package_is_high(tmp_path: Path) -> None:
    evidence = scan(tmp_path, {"MLmodel": pyfunc(code="code", loader_module="mlflow.sklearn"),
                               "code/numpy/__init__.py": "X = 1\n", "code/helpers.py": "Y = 2\n"})
    [finding] = rule(evidence, "MLFLOW-CODE-PATH")
    assert finding.severity == Severity.HIGH and "numpy" in finding.message
    assert list(finding.details["modules"]) == ["helpers", "numpy"]


def test_models_from_code_and_pickled_python_model(tmp_path: Path) -> None:
    evidence = scan(tmp_path, {"MLmodel": pyfunc(loader_module="mlflow.pyfunc.model", python_model="model.py"),
                               "model.py": "x = 1\n"})
    assert [f.severity for f in rule(evidence, "MLFLOW-LOADER-MODULE")] == [Severity.LOW]
    evidence = scan(tmp_path / "b", {"MLmodel": pyfunc(loader_module="mlflow.pyfunc.model",
                                                       python_model="python_model.pkl")})
    assert [f.severity for f in rule(evidence, "MLFLOW-PICKLED-MODEL")] == [Severity.LOW]


def test_pytorch_model_data_is_a_pickle(tmp_path: Path) -> None:
    text = "flavors:\n  pytorch:\n    model_data: data\n    pytorch_version: 2.1.0\n"
    evidence = scan(tmp_path, {"MLmodel": text, "data/model.pth": "not really\n"})
    [finding] = rule(evidence, "MLFLOW-PICKLED-MODEL")
    assert "torch.load" in finding.message and "not in the repository" not in finding.message


def test_duplicate_loader_module_is_a_differential(tmp_path: Path) -> None:
    # yaml.safe_load keeps the last value: the loader imports evil_loader
    text = pyfunc(loader_module="mlflow.sklearn").replace("    python_version", "    loader_module: evil_loader\n"
                                                          "    python_version")
    evidence = scan(tmp_path, {"MLmodel": text})
    assert any(f.rule_id == "YAML-DUPLICATE-KEY" and f.severity == Severity.HIGH for f in evidence.findings)
    assert [f.details["module"] for f in rule(evidence, "MLFLOW-LOADER-MODULE")] == ["evil_loader"]


def test_odd_mlmodel_shapes_are_quiet(tmp_path: Path) -> None:
    for i, text in enumerate(["flavors: []\n", "a: 1\n", "flavors: {python_function: 3}\n", "- x\n", "~\n",
                              "flavors:\n  python_function:\n    loader_module: null\n    code: ~\n"]):
        evidence = scan(tmp_path / str(i), {"MLmodel": text})
        assert not evidence.at_or_above(Severity.LOW), text


def test_mlmodel_inside_an_archive(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = pyfunc(code="code", loader_module="my_loader").encode()
        info = tarfile.TarInfo("model/MLmodel")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.tar").write_bytes(buffer.getvalue())
    evidence = aivet.scan(tmp_path / "m")
    # the repository's files are not beside an archive member: a module outside MLflow, medium
    assert [f.severity for f in rule(evidence, "MLFLOW-LOADER-MODULE")] == [Severity.MEDIUM]


def test_code_directory_outside_the_model_is_high(tmp_path: Path) -> None:
    for i, code in enumerate(["/usr/local/lib/evil", "../../shared", "'C:\\\\tools'"]):
        evidence = scan(tmp_path / str(i), {"MLmodel": pyfunc(code=code, loader_module="mlflow.sklearn")})
        assert [f.severity for f in rule(evidence, "MLFLOW-CODE-PATH")] == [Severity.HIGH], code
