"""Remote code that tampers with the interpreter instead of attacking directly.

The checks in :mod:`aivet.analyzers.pycode` look at what a call *does*. These look
at what code *changes* so that something else does it later, where a call-by-call
reading sees nothing dangerous:

* dangerous callables referred to without being called: ``e = eval``, ``lambda
  x, e=eval: e(x)``, ``atexit.register(os.system, ...)``, ``Thread(target=os.system)``,
  ``{"x": os.system}``, ``@os.system``;
* environment variables that decide what later processes load (``LD_PRELOAD``,
  ``PYTHONPATH``, ``PIP_INDEX_URL``, ``HF_ENDPOINT``);
* replacing functions of other modules (``torch.load = ...``, ``setattr(transformers.X,
  'from_pretrained', ...)``, ``sys.modules['x'] = ...``) and function code objects;
* interpreter hooks and delayed payloads (``sys.settrace``, ``sys.addaudithook``,
  ``atexit.register``, ``signal.signal``, ``threading.Timer``, ``sys.meta_path``,
  ``sys.path`` pointing outside the repository);
* introspection escapes (``__globals__``, ``f_globals``, ``().__class__.__base__.__subclasses__()``).

:class:`TamperChecks` is mixed into the checker of :mod:`pycode`, which provides the
resolver, the report and the severity helpers.
"""

from __future__ import annotations

import ast

from aivet.analyzers.pycode_calls import (
    ENV_HIJACK_MEDIUM_VARS,
    ENV_HIJACK_VARS,
    EXEC_CALLS,
    HOOK_ATTRIBUTES,
    HOOK_CALLS,
    IMPORT_CALLS,
    PROCESS_CALLS,
    PROCESS_NOT_CALLS,
    PROCESS_PREFIXES,
    REFERENCE_LEAVES,
    SENSITIVE_MODULES,
    outside_repo,
    short_repr,
)
from aivet.analyzers.pycode_rules import (
    DESERIALIZATION,
    DYNAMIC_IMPORT,
    ENV_HIJACK,
    EXEC,
    HOOK,
    MONKEYPATCH,
    OBFUSCATION,
    PROCESS,
    Reporter,
)
from aivet.analyzers.pyfold import Resolver
from aivet.evidence import Severity
from aivet.rules import Rule

_NAMESPACE_ATTRS = frozenset({"__globals__", "f_globals", "f_builtins", "__dict__", "f_locals"})
_ESCAPE_CHAIN = frozenset({"__class__", "__base__", "__bases__", "__mro__"})
_DANGEROUS_KEYS = REFERENCE_LEAVES | {"__builtins__", "os", "subprocess", "sys", "builtins", "posix", "nt"}


# Delayed-call APIs: where the callback sits (argument position, keyword; "*": every keyword).
_CALLBACK_AT: dict[str, tuple[int | None, str | None]] = {
    "atexit.register": (0, None), "signal.signal": (1, "handler"), "threading.Timer": (1, "function"),
    "sched.scheduler.enter": (2, "action"), "os.register_at_fork": (None, "*")}


def dangerous_reference(name: str) -> Rule | None:
    """The rule a reference to callable ``name`` (not a call of it) falls under, if it is dangerous."""
    leaf = name.rsplit(".", 1)[-1]
    if name in EXEC_CALLS:
        return None if name == "builtins.compile" else EXEC
    if name in PROCESS_CALLS or (name.startswith(PROCESS_PREFIXES) and name not in PROCESS_NOT_CALLS and (
            leaf in REFERENCE_LEAVES or leaf.startswith(("exec", "spawn", "posix_spawn")))):
        return PROCESS
    if name in IMPORT_CALLS:
        return DYNAMIC_IMPORT
    return None


# Methods that load, save or upload models: replaced, they see every weight file and token passed to them.
_SENSITIVE_LEAVES = frozenset({"from_pretrained", "save_pretrained", "push_to_hub", "hf_hub_download",
                               "snapshot_download", "load_state_dict", "get_token", "upload_file", "upload_folder"})


def _sensitive(target: str) -> bool:
    return target.rsplit(".", 1)[-1] in _SENSITIVE_LEAVES or any(
        target == m or target.startswith(m + ".") for m in SENSITIVE_MODULES)


class TamperChecks:
    """Checks for tampering, mixed into the checker (which sets ``resolver`` and ``report``)."""

    resolver: Resolver
    report: Reporter

    def _where_text(self, import_time: bool) -> str:
        return "at import time" if import_time else "when called"

    # -- references to dangerous callables ---------------------------------------------------------
    def reference(self, node: ast.Name | ast.Attribute | ast.Call) -> None:
        """A dangerous callable used as a value: aliased, stored, passed as a callback or default."""
        if isinstance(node, ast.Attribute):
            if node.attr not in REFERENCE_LEAVES and not node.attr.startswith(("exec", "spawn", "posix_spawn")):
                return
        elif isinstance(node, ast.Call) and self.resolver.qualname(node.func) not in (
                "builtins.getattr", "operator.attrgetter"):
            return
        name = self.resolver.qualname(node)
        rule = dangerous_reference(name) if name else None
        if rule is None or name is None:
            return
        self.report.add(rule, node.lineno, f"refers to {name} without calling it here (alias, stored callable, "
                        "callback or default argument): it runs wherever the reference is called", call=name)

    def introspection(self, node: ast.Attribute) -> None:
        """``__globals__``, ``f_globals``, ``__subclasses__``: reaching functions a reader cannot see named."""
        chain: list[str] = []
        cur: ast.expr = node.value
        for _ in range(16):
            if isinstance(cur, ast.Attribute):
                chain.append(cur.attr)
                cur = cur.value
            elif isinstance(cur, (ast.Call, ast.Subscript)):
                cur = cur.func if isinstance(cur, ast.Call) else cur.value
            else:
                break
        if node.attr == "__subclasses__" and _ESCAPE_CHAIN & set(chain):
            sev = Severity.HIGH  # ().__class__.__base__.__subclasses__(): the classic sandbox escape
        elif node.attr in ("__subclasses__", "f_back", "gi_frame", "tb_frame", "cr_frame"):
            sev = Severity.LOW
        else:
            sev = Severity.MEDIUM
        self.report.add(OBFUSCATION, node.lineno,
                        f"introspection through {node.attr}: reaches objects by a path a reader does not see",
                        severity=sev, attribute=node.attr)

    def namespace_subscript(self, node: ast.Subscript) -> None:
        """``f.__globals__['system']``, ``frame.f_globals['__builtins__']``: a hidden name looked up."""
        value = node.value
        if not (isinstance(value, ast.Attribute) and value.attr in _NAMESPACE_ATTRS):
            return
        key = self.resolver.fold(node.slice)
        if key is not None and key.text is not None and key.text in _DANGEROUS_KEYS:
            self.report.add(OBFUSCATION, node.lineno,
                            f"looks up {key.text!r} in {value.attr}: a dangerous name reached by introspection",
                            severity=Severity.HIGH, attribute=value.attr, key=key.text[:100])

    # -- assignments: environment, monkeypatching, hooks -------------------------------------------
    def assignment(self, node: ast.Assign | ast.AugAssign | ast.AnnAssign, import_time: bool) -> None:
        """Targets of an assignment that tamper with the environment, other modules or hooks."""
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        value = node.value
        for t in targets[:8]:
            if isinstance(t, ast.Subscript):
                base = self.resolver.qualname(t.value)
                if base in ("os.environ", "os.environb"):
                    key = self.resolver.fold(t.slice)
                    self.env_write(key.text if key is not None else None, node.lineno, import_time)
                elif base == "sys.modules":
                    key = self.resolver.fold(t.slice)
                    name = key.text if key is not None and key.text else "a module"
                    self.report.add(MONKEYPATCH, node.lineno, f"replaces {name} in sys.modules: every later import "
                                    "of it gets this object", severity=Severity.HIGH, target=f"sys.modules[{name!r}]"[:200])
                elif base in ("builtins", "builtins.__dict__"):
                    key = self.resolver.fold(t.slice)
                    name = key.text if key is not None and key.text else "?"
                    self.patched(f"builtins.{name}", value, node.lineno)
            elif isinstance(t, ast.Attribute):
                if t.attr == "__class__" and isinstance(t.value, ast.Subscript) and self.resolver.qualname(
                        t.value.value) == "sys.modules":
                    self.report.add(MONKEYPATCH, node.lineno, "swaps the class of a module in sys.modules: every "
                                    "attribute lookup on it runs this code", severity=Severity.HIGH,
                                    target="sys.modules[...].__class__")
                    continue
                if t.attr in ("__code__", "__globals__"):
                    self.report.add(DESERIALIZATION, node.lineno,
                                    f"replaces a function's {t.attr}: the function runs code that is not in its "
                                    "definition", call=t.attr)
                    continue
                target = self.resolver.qualname(t)
                if target in ("os.environ", "os.environb") and isinstance(value, ast.Dict):
                    for key_node in value.keys[:64]:  # os.environ |= {"LD_PRELOAD": ...}
                        key = self.resolver.fold(key_node) if key_node is not None else None
                        self.env_write(key.text if key is not None else None, node.lineno, import_time)
                elif target is not None:
                    self.patched(target, value, node.lineno)

    def patched(self, target: str, value: ast.expr | None, line: int) -> None:
        """``target`` (a resolved attribute of another module) is assigned ``value``."""
        if target in HOOK_ATTRIBUTES or target.startswith(("sys.meta_path", "sys.path_hooks")):
            self.report.add(HOOK, line, f"replaces the interpreter hook {target}", hook=target)
            return
        if value is None or isinstance(value, ast.Constant):
            return  # torch.backends.cudnn.benchmark = True: a setting, not a replacement
        if _sensitive(target):
            self.report.add(MONKEYPATCH, line, f"replaces {target}, which security depends on: later calls run "
                            "this code instead", severity=Severity.HIGH, target=target[:200])
            return
        replacement = self.resolver.qualname(value)
        function_like = isinstance(value, ast.Lambda) or (
            isinstance(value, ast.Name) and value.id in self.resolver.defined) or (
            replacement is not None and not replacement.startswith("builtins."))  # np.float = float: a shim
        if function_like:
            self.report.add(MONKEYPATCH, line, f"replaces {target} of another module with its own code",
                            target=target[:200])

    def env_write(self, var: str | None, line: int, import_time: bool) -> None:
        """An environment variable set (``os.environ[var] = ...``, ``os.putenv``, ``update``)."""
        if var is None:
            return
        if ENV_HIJACK_VARS.match(var):
            sev = Severity.MEDIUM if ENV_HIJACK_MEDIUM_VARS.match(var) else Severity.HIGH
            self.report.add(ENV_HIJACK, line, f"sets {var} {self._where_text(import_time)}: it changes what "
                            "later processes, imports or downloads load", severity=sev, variable=var[:100])

    def env_call(self, name: str, node: ast.Call, import_time: bool) -> None:
        """``os.putenv(k, v)``, ``os.environ.setdefault(k, v)``, ``os.environ.update({...})``."""
        if name in ("os.putenv", "os.environ.setdefault", "os.environ.__setitem__") and node.args:
            key = self.resolver.fold(node.args[0])
            self.env_write(key.text if key is not None else None, node.lineno, import_time)
        elif name == "os.environ.update":
            for k in node.keywords:
                self.env_write(k.arg, node.lineno, import_time)
            for a in node.args[:1]:
                if isinstance(a, ast.Dict):
                    for key_node in a.keys[:64]:
                        key = self.resolver.fold(key_node) if key_node is not None else None
                        self.env_write(key.text if key is not None else None, node.lineno, import_time)

    def setattr_call(self, node: ast.Call) -> None:
        """``setattr(module, 'name', value)``: monkeypatching with the name as data."""
        if len(node.args) < 3:
            return
        base = self.resolver.qualname(node.args[0])
        attr = self.resolver.fold(node.args[1])
        if base is None or attr is None or attr.text is None:
            return
        self.patched(f"{base.removesuffix('.__dict__')}.{attr.text}", node.args[2], node.lineno)

    def _local_callbacks(self, name: str, node: ast.Call) -> bool:
        """Whether every callback handed to the delayed-call API ``name`` is a lambda or a function
        defined in this file (or signal's own SIG_IGN / SIG_DFL)."""
        position, keyword = _CALLBACK_AT[name]
        handed = [node.args[position]] if position is not None and len(node.args) > position else []
        handed += [k.value for k in node.keywords if keyword == "*" or k.arg == keyword]
        resolver = self.resolver
        return bool(handed) and all(
            isinstance(a, ast.Lambda)
            or (isinstance(a, ast.Name) and a.id in resolver.defined and a.id not in resolver.assigned)
            or resolver.qualname(a) in ("signal.SIG_IGN", "signal.SIG_DFL")
            for a in handed)

    def hook_call(self, name: str, node: ast.Call) -> None:
        """Interpreter hooks, delayed callbacks and import-path changes."""
        if name in HOOK_CALLS:
            if name in _CALLBACK_AT and self._local_callbacks(name, node):
                # A cleanup or signal handler written in this file: its body is analysed as code that
                # runs (see pycode_import_time), so the registration itself says little.
                self.report.add(HOOK, node.lineno, f"registers a function of this file with {name}",
                                severity=Severity.LOW, hook=name)
            else:
                self.report.add(HOOK, node.lineno, f"installs {name}: code that runs later or on every event",
                                hook=name)
        elif name in ("sys.path.insert", "sys.path.append", "sys.path.extend", "site.addsitedir") and node.args:
            where = self.resolver.fold(node.args[-1])
            if where is not None and where.text is not None and outside_repo(where.text):
                self.report.add(HOOK, node.lineno, f"adds {short_repr(where.text)} to the import path: modules are "
                                "then imported from outside the repository", hook=name, path=where.text[:200])
