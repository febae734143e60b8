"""The bounded YAML composer: nodes and tags as loaders see them, and hostile input bounded.

Boundedness is measured with tests/fixtures/work.py (aivet lines executed, traced memory),
never wall-clock time.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aivet.analyzers.context import Context, ScanOptions
from aivet.analyzers.source import Source
from aivet.analyzers.yaml_compose import MAPPING, PYTHON_TAG, SCALAR, SEQUENCE, Bounds, Node, compose
from aivet.analyzers.yaml_config import BOUNDS, analyze
from aivet.evidence import ArtifactStatus
from aivet.formats import FormatError, LimitExceeded
from aivet.limits import Limits
from tests.fixtures.work import HANG_TIMEOUT, growth, memory_peak, python_lines

SMALL = Bounds(max_events=2_000, max_depth=32, max_documents=10)


def only(text: str) -> Node:
    docs = compose(text, BOUNDS).documents
    assert len(docs) == 1
    return docs[0]


def value(mapping: Node, key: str) -> Node:
    return [v for k, v in mapping.pairs() if k.value == key][-1]


# -- what is composed ---------------------------------------------------------------------------


def test_scalars_sequences_mappings_and_lines() -> None:
    root = only("a: 1\nb: [x, 'y']\nc: {d: e}\n")
    assert root.kind == MAPPING and [k.value for k, _ in root.pairs()] == ["a", "b", "c"]
    b = value(root, "b")
    assert b.kind == SEQUENCE and [c.value for c in b.children] == ["x", "y"]
    assert b.children[0].plain and not b.children[1].plain  # quoted scalars get no implicit resolution
    assert value(root, "c").kind == MAPPING and value(root, "c").line == 3


def test_tags_are_expanded_as_every_parser_does() -> None:
    # %TAG handles, verbatim tags and %-escapes all reach the constructor as the same tag.
    full = PYTHON_TAG + "object/apply:os.system"
    for text in ("x: !!python/object/apply:os.system [a]\n",
                 "%TAG !p! tag:yaml.org,2002:python/\n---\nx: !p!object/apply:os.system [a]\n",
                 "x: !<tag:yaml.org,2002:python/object/apply:os.system> [a]\n",
                 "x: !!python/object/apply:os%2Esystem [a]\n"):
        assert value(only(text), "x").tag == full, text
    assert value(only("%TAG !h! !apply:\n---\nx: !h!os.system [a]\n"), "x").tag == "!apply:os.system"
    # the non-specific tag "!" is no tag at all
    assert value(only("x: ! plain\n"), "x").tag is None


def test_aliases_are_edges_not_copies() -> None:
    root = only("a: &x {k: v}\nb: *x\n")
    assert value(root, "a") is value(root, "b")


def test_duplicate_keys_and_merge_keys_are_kept() -> None:
    root = only("m: {_target_: a, _target_: b, <<: {c: d}}\n")
    assert [k.value for k, _ in value(root, "m").pairs()] == ["_target_", "_target_", "<<"]


def test_redefined_anchor_is_recorded_and_later_aliases_mean_the_second() -> None:
    # ruamel (HyperPyYAML) behaviour; PyYAML and OmegaConf refuse the document (verified, docs/yaml.md).
    composed = compose("a: &x 1\nb: &x 2\nc: *x\n", BOUNDS)
    assert composed.redefined_anchors == [("x", 2)]
    assert value(composed.documents[0], "c").value == "2"


def test_documents_and_bom() -> None:
    assert len(compose("a: 1\n---\nb: 2\n...\n--- c\n", BOUNDS).documents) == 3
    root = only("\ufeffm: {_target_: os.system}\n")
    assert value(value(root, "m"), "_target_").value == "os.system"


def test_anchors_are_scoped_to_their_document() -> None:
    with pytest.raises(FormatError, match="no anchor"):
        compose("a: &x 1\n---\nb: *x\n", BOUNDS)


@pytest.mark.parametrize("text", ["a: [\n", "a: b: c\n", "\x07", "a: *nowhere\n", "- a\nb: c\n", "{a: 1"])
def test_malformed_yaml_is_a_format_error(text: str) -> None:
    with pytest.raises(FormatError):
        compose(text, BOUNDS)


# -- bounds -------------------------------------------------------------------------------------


def billion_laughs(levels: int) -> str:
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(HANG_TIMEOUT)
def test_billion_laughs_costs_one_event_per_alias() -> None:
    composed = compose(billion_laughs(9), BOUNDS)  # 10**9 strings if expanded
    assert composed.events < 200


@pytest.mark.timeout(HANG_TIMEOUT)
def test_billion_laughs_analysis_is_linear_in_the_text() -> None:
    def work(levels: int) -> int:
        return python_lines(lambda: run(billion_laughs(levels), "config.yaml"))[1]

    assert growth(work, 6, factor=2) < 3  # 10**12 expansions would be astronomically more


@pytest.mark.timeout(HANG_TIMEOUT)
@pytest.mark.parametrize("text", ["[" * 10_000 + "]" * 10_000, "{a: " * 10_000 + "1" + "}" * 10_000,
                                  "".join(" " * i + "a:\n" for i in range(2_000))])
def test_ten_thousand_deep_nesting_stops_at_the_depth_bound(text: str) -> None:
    with pytest.raises(LimitExceeded) as info:
        compose(text, SMALL)
    assert info.value.limit == "max_yaml_depth"
    _, lines = python_lines(lambda: pytest.raises(LimitExceeded, compose, text, SMALL))
    assert lines < 100 * SMALL.max_depth  # independent of the 10,000 levels written


@pytest.mark.timeout(HANG_TIMEOUT)
def test_million_document_stream_stops_at_the_document_bound() -> None:
    text = "--- 1\n" * 1_000_000

    def attempt() -> str:
        try:
            compose(text, SMALL)
        except LimitExceeded as exc:
            return exc.limit
        return "none"

    (limit, lines) = python_lines(attempt)
    assert limit == "max_yaml_documents"
    assert lines < 100 * SMALL.max_documents  # the rest of the million is never looked at


@pytest.mark.timeout(HANG_TIMEOUT)
def test_event_bound_makes_work_independent_of_input_size() -> None:
    def work(n: int) -> int:
        text = "[" + "0, " * n + "]"
        return python_lines(lambda: pytest.raises(LimitExceeded, compose, text, SMALL))[1]

    assert growth(work, 10_000, factor=4) < 1.2
    _, peak = memory_peak(lambda: pytest.raises(LimitExceeded, compose, "[" + "0, " * 200_000 + "]", SMALL))
    assert peak < 8 * 1024 * 1024


@pytest.mark.timeout(HANG_TIMEOUT)
def test_analyzer_reports_a_limit_and_stays_partial() -> None:
    ctx = Context(subject="t", options=ScanOptions(limits=Limits(max_yaml_depth=16)))
    text = "x: !!python/object/apply:os.system [a]\n" + "d: " + "[" * 40 + "]" * 40 + "\n"
    outcome = analyze(Source.from_bytes(text.encode(), "config.yaml"), ctx)
    assert outcome.status is ArtifactStatus.PARTIAL
    ids = {f.rule_id for f in ctx.findings}
    assert {"SCAN-LIMIT-EXCEEDED", "YAML-PYTHON-TAG"} <= ids  # the raw search still finds the tag


# -- properties ---------------------------------------------------------------------------------


def run(text: str, name: str) -> ArtifactStatus:
    ctx = Context(subject="p", options=ScanOptions(limits=Limits(max_yaml_events=5_000, max_yaml_depth=64)))
    return analyze(Source.from_bytes(text.encode("utf-8", "surrogatepass"), name), ctx).status


SEED = ("a: &x !new:torch.nn.Linear {in: 1}\nb: *x\nc: !!python/tuple [1, 2]\nd: '(1, !!python/name:os.sep)'\n"
        "e: ${oc.env:HF_TOKEN}\n_target_: ${a}\n<<: {k: v}\nf: !ref <a> ** 2\n%TAG\n--- |\n  x\n")
YAML_ALPHABET = st.sampled_from(list("{}[]:,-?&*!|>'\"%@`#\n \t\\") + ["!!python/", "&a", "*a", "---", "...",
                                                                       "_target_", "!new:", "${", "\ufeff"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_random_text_only_raises_format_errors(text: str) -> None:
    try:
        compose(text, SMALL)
    except (FormatError, LimitExceeded):
        pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(YAML_ALPHABET | st.text(max_size=5), max_size=80))
def test_yaml_shaped_noise_only_raises_format_errors(parts: list[str]) -> None:
    text = "".join(parts)
    try:
        run(text, "hyperparams.yaml")
    except (FormatError, LimitExceeded):
        pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200), st.integers(min_value=0, max_value=len(SEED)), st.integers(0, 40))
def test_mutated_bytes_only_raise_format_errors(noise: bytes, at: int, cut: int) -> None:
    data = SEED.encode()[:at] + noise + SEED.encode()[at + cut:]
    ctx = Context(subject="p")
    try:
        analyze(Source.from_bytes(data, "model_config.yaml"), ctx)
        analyze(Source.from_bytes(data, "MLmodel"), ctx)
    except (FormatError, LimitExceeded):
        pass


def test_the_seed_itself_is_valid_yaml() -> None:
    docs = compose(SEED.replace("%TAG\n", ""), BOUNDS).documents
    assert [d.kind for d in docs] == [MAPPING, SCALAR]


def test_pure_python_parser_gives_the_same_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    # PyYAML without libyaml: the Python parser is also a state machine, and reports styles differently
    import yaml

    from aivet.analyzers import yaml_compose

    text = "%TAG !p! tag:yaml.org,2002:python/\n---\na: &x !p!name:os.system\nb: [*x, 'q', p]\n"
    expected = only(text)
    monkeypatch.setattr(yaml_compose, "_Loader", yaml.SafeLoader)
    root = only(text)
    assert value(root, "a").tag == value(expected, "a").tag == PYTHON_TAG + "name:os.system"
    assert [(c.value, c.plain) for c in value(root, "b").children[1:]] == [("q", False), ("p", True)]
    assert value(root, "b").children[0] is value(root, "a")
    with pytest.raises(LimitExceeded):
        compose("[" * 100 + "]" * 100, SMALL)
