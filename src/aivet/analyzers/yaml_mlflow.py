"""MLflow ``MLmodel`` files: which code and which pickles loading the model runs.

Facts from MLflow's sources (``mlflow/pyfunc/__init__.py``, ``mlflow/utils/model_utils.py``):
``mlflow.pyfunc.load_model`` reads ``MLmodel`` with ``yaml.safe_load``, prepends the
directory named by ``flavors.python_function.code`` to ``sys.path`` (``sys.path = [code] +
sys.path``: its modules shadow installed ones), imports
``flavors.python_function.loader_module`` with ``importlib.import_module`` and calls its
``_load_pyfunc``. MLflow's own flavors are ``mlflow.<flavor>`` modules; several of them
unpickle the model (``sklearn`` ``pickled_model`` with ``serialization_format`` pickle or
cloudpickle, the pyfunc ``python_model`` of a custom ``PythonModel``, ``pytorch``
``model_data`` saved with ``torch.save``). "Models from code" (MLflow 2.12+) name a ``.py``
file as ``python_model``, which is executed.
"""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING, Any

from aivet.analyzers.allowlist import Classification, classify
from aivet.analyzers.paths import escape_reason
from aivet.analyzers.yaml_compose import MAPPING, SCALAR, Node
from aivet.analyzers.yaml_config import MLFLOW_CODE_PATH, MLFLOW_LOADER_MODULE, MLFLOW_PICKLED_MODEL
from aivet.analyzers.yaml_targets import MODULE_NAME
from aivet.evidence import Severity
from aivet.rules import Rule

if TYPE_CHECKING:
    from aivet.analyzers.yaml_config import Report

# Top-level names that a model's code directory must not provide: loaders import them.
SHADOWED = frozenset("""
    numpy pandas scipy sklearn torch torchvision tensorflow keras mlflow cloudpickle pickle joblib yaml json
    os sys subprocess typing collections logging importlib requests urllib3 transformers xgboost lightgbm
    catboost statsmodels pyspark google six packaging setuptools pkg_resources encodings site sitecustomize
""".split())
_PICKLE_FORMATS = ("pickle", "cloudpickle")


def check_mlmodel(root: Node, report: Report) -> None:
    """Report the code an ``MLmodel`` document makes mlflow import and the pickles it loads."""
    flavors = _get(root, "flavors")
    if flavors is None or flavors.kind != MAPPING:
        return
    base = posixpath.dirname(report.source.path) if "!" not in report.source.path else None
    for name_node, flavor in flavors.pairs():
        if name_node.kind != SCALAR or flavor.kind != MAPPING:
            continue
        flavor_name = name_node.value
        pointer = f"/flavors/{flavor_name}"
        if flavor_name == "python_function":
            _python_function(flavor, pointer, base, report)
        pickled = _scalar(flavor, "pickled_model")
        serialization = _scalar(flavor, "serialization_format") or "pickle"
        if pickled and serialization in _PICKLE_FORMATS:
            _pickled(report, flavor, "pickled_model", pointer, f"{flavor_name} loads {pickled} with {serialization}",
                     pickled, base)
        data = _scalar(flavor, "model_data")
        if flavor_name == "pytorch" and data:
            _pickled(report, flavor, "model_data", pointer, f"pytorch loads {data} with torch.load (a pickle)",
                     data, base)


def _python_function(flavor: Node, pointer: str, base: str | None, report: Report) -> None:
    code = _scalar(flavor, "code")
    if code:
        _code_path(flavor, pointer, code, base, report)
    module = _scalar(flavor, "loader_module")
    if module:
        _loader_module(flavor, pointer, module, code, base, report)
    model = _scalar(flavor, "python_model")
    if model and model.endswith(".py"):
        _add(report, MLFLOW_LOADER_MODULE, _get(flavor, "python_model"), f"{pointer}/python_model",
             f"models-from-code: loading executes {model}", Severity.LOW, file=model)
    elif model:
        _pickled(report, flavor, "python_model", pointer, f"the custom PythonModel {model} is cloudpickled", model,
                 base)


def _loader_module(flavor: Node, pointer: str, module: str, code: str | None, base: str | None,
                   report: Report) -> None:
    where = f"{pointer}/loader_module"
    node = _get(flavor, "loader_module")
    if not MODULE_NAME.fullmatch(module):
        _add(report, MLFLOW_LOADER_MODULE, node, where, f"loader_module {module[:200]!r} is not a module name",
             Severity.HIGH, module=module[:200])
        return
    if module == "mlflow" or module.startswith("mlflow."):
        return
    shipped = _shipped(module, code, base, report.ctx.repo_files)
    verdict, why = classify(module)
    if shipped:
        severity, reason = Severity.HIGH, f"shipped in the model's code directory ({shipped}): loading runs it"
    elif verdict is Classification.DANGEROUS:
        severity, reason = Severity.HIGH, why
    else:
        severity, reason = Severity.MEDIUM, "imported from whatever is installed under that name"
    _add(report, MLFLOW_LOADER_MODULE, node, where, f"loader_module {module}: {reason}", severity,
         module=module, shipped=shipped or None)


def _code_path(flavor: Node, pointer: str, code: str, base: str | None, report: Report) -> None:
    node = _get(flavor, "code")
    outside = escape_reason(code)
    if outside is not None:  # os.path.join(model_dir, "/abs") is "/abs": any directory on the machine
        _add(report, MLFLOW_CODE_PATH, node, f"{pointer}/code", f"code directory {code[:200]!r} {outside}: "
             "loading puts a directory outside the model first on sys.path", Severity.HIGH, path=code[:200])
        return
    modules: list[str] = []
    if base is not None:
        prefix = posixpath.normpath(posixpath.join(base, code)) + "/"
        for path in report.ctx.repo_files:
            if path.startswith(prefix):
                top = path[len(prefix):].split("/", 1)[0]
                top = top[:-3] if top.endswith(".py") else top
                if top and top not in modules:
                    modules.append(top)
    shadow = sorted(m for m in modules if m in SHADOWED)
    if shadow:
        _add(report, MLFLOW_CODE_PATH, node, f"{pointer}/code", f"code directory {code[:200]} is put first on "
             f"sys.path and shadows {', '.join(shadow[:10])}", Severity.HIGH, modules=sorted(modules)[:50])
    else:
        _add(report, MLFLOW_CODE_PATH, node, f"{pointer}/code", f"code directory {code[:200]} is put first on "
             "sys.path when the model loads", None, modules=sorted(modules)[:50])


def _pickled(report: Report, flavor: Node, key: str, pointer: str, message: str, file: str,
             base: str | None) -> None:
    path = posixpath.normpath(posixpath.join(base, file)) if base is not None else None
    present = path is not None and (path in report.ctx.repo_files
                                    or any(p.startswith(path + "/") for p in report.ctx.repo_files))
    _add(report, MLFLOW_PICKLED_MODEL, _get(flavor, key), f"{pointer}/{key}",
         message + ("" if present or path is None else " (not in the repository)"), None, file=file[:200])


def _shipped(module: str, code: str | None, base: str | None, repo_files: frozenset[str]) -> str | None:
    if code is None or base is None:
        return None
    stem = posixpath.join(posixpath.normpath(posixpath.join(base, code)), *module.split("."))
    for candidate in (f"{stem}.py", f"{stem}/__init__.py"):
        if candidate in repo_files:
            return candidate
    return None


def _add(report: Report, rule: Rule, node: Node | None, pointer: str, message: str,
         severity: Severity | None, **details: Any) -> None:
    report.add_at(rule, node.line if node is not None else None, pointer, message, severity=severity, **details)


def _get(mapping: Node, key: str) -> Node | None:
    found = None
    if mapping.kind == MAPPING:
        for k, v in mapping.pairs():
            if k.kind == SCALAR and k.value == key:
                found = v  # the last wins, as yaml.safe_load does
    return found


def _scalar(mapping: Node, key: str) -> str | None:
    node = _get(mapping, key)
    if node is None or node.kind != SCALAR or node.value in ("", "null", "~", "None"):
        return None
    return node.value
