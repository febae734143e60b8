"""The license catalogue: what aivet knows about each model license, as data.

Three tables, kept apart from the matching code in :mod:`aivet.policy.licenses`:

* :data:`CATALOGUE` -- one :class:`~aivet.policy.licenses.LicenseInfo`-shaped
  entry per license we know, with its obligations in plain words;
* :data:`HF_IDS` -- the Hugging Face ``license:`` identifiers (hub-docs
  ``repositories-licenses.md``, list as of :data:`HF_LIST_VERSION`) and the
  ``license_name:`` values seen with ``license: other``, mapped to our ids;
* :data:`FINGERPRINTS` -- for license *texts*: anchor phrases that name a
  license near the top of a file, and the key clauses a faithful copy must
  keep (a copy missing one is reported as altered, never as the original).

Facts come from the license texts themselves (ScanCode LicenseDB copies and
the publishers' LICENSE files); only short phrases are kept here. This is not
legal advice: obligations are summaries for a reviewer, not substitutes for
the text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

HF_LIST_VERSION = "hub-docs repositories-licenses.md @242f4a1 (2026-08-22)"

# Obligation kinds (plain strings so that policies and reports can key on them).
ATTRIBUTION = "attribution"
NAMING = "naming"
NOTICE = "notice"
SHARE_ALIKE = "share-alike"
COPYLEFT = "copyleft"
USE_RESTRICTIONS = "use-restrictions"
USER_CAP = "user-cap"
NON_COMMERCIAL = "non-commercial"
NO_DERIVATIVES = "no-derivatives"
AUP = "acceptable-use-policy"
LICENSE_COPY = "license-copy"
MODIFICATION_NOTICE = "modification-notice"
LICENSOR_CONTROL = "licensor-control"
NETWORK_SOURCE = "network-source"
NO_ENDORSEMENT = "no-endorsement"
REVIEW = "review"


@dataclass(frozen=True)
class Entry:
    """One catalogue row; :func:`aivet.policy.licenses.license_info` turns it into a LicenseInfo."""

    id: str
    name: str
    spdx: str | None
    family: str
    commercial_use: bool | None
    allows_derivatives: bool | None
    monthly_user_cap: int | None
    obligations: tuple[tuple[str, str], ...]
    osi_approved: bool = False
    publisher: str | None = None  # who grants it (for origin facts): "Meta Platforms, Inc."
    jurisdiction: str | None = None  # the publisher's country, when the license names one publisher
    eu_multimodal_restricted: bool = False  # the AUP withholds multimodal rights from EU-domiciled entities


_COPY = (LICENSE_COPY, "Give every recipient a copy of the license with the model or any derivative.")
_MODS = (MODIFICATION_NOTICE, "Mark files you modified with a prominent notice that you changed them.")


def _permissive(id_: str, name: str, spdx: str | None, *extra: tuple[str, str], osi: bool = True) -> Entry:
    return Entry(id_, name, spdx, "permissive", True, True, None,
                 ((ATTRIBUTION, "Keep the copyright notice and the license text in all copies or substantial "
                                "portions you distribute."), *extra), osi)


_APACHE = Entry(
    "apache-2.0", "Apache License 2.0", "Apache-2.0", "permissive", True, True, None, (
        _COPY,
        (ATTRIBUTION, "Keep the copyright, patent, trademark and attribution notices of the source."),
        (NOTICE, "If the model ships a NOTICE file, pass its attribution notices on with what you distribute."),
        _MODS,
    ), True)

_MIT = _permissive("mit", "MIT License", "MIT")
_BSD2 = _permissive("bsd-2-clause", "BSD 2-Clause License", "BSD-2-Clause")
_BSD3 = _permissive("bsd-3-clause", "BSD 3-Clause License", "BSD-3-Clause",
                    (NO_ENDORSEMENT, "Do not use the copyright holder's or contributors' names to endorse or "
                                     "promote derived products without written permission."))


def _gpl(id_: str, name: str, spdx: str | None, *, lesser: bool = False, affero: bool = False) -> Entry:
    obligations: list[tuple[str, str]] = [_COPY]
    if lesser:
        obligations.append((COPYLEFT, "Changes to the licensed work itself must be released under the same "
                                      "license with their source; larger works that only use it may keep "
                                      "their own terms."))
    else:
        obligations.append((COPYLEFT, "Distribute the model and any derivative only under the same license, "
                                      "with the complete corresponding source (what counts as source for "
                                      "model weights is unsettled: get a legal review)."))
    if affero:
        obligations.append((NETWORK_SOURCE, "Users who interact with a modified version over a network must be "
                                            "offered its corresponding source."))
    return Entry(id_, name, spdx, "weak-copyleft" if lesser else "copyleft", True, True, None,
                 tuple(obligations), True)


def _cc(id_: str, version: str, parts: str) -> Entry:
    """A Creative Commons license from its elements (``by``, ``by-sa``, ``by-nc-nd``, ...)."""
    sa, nc, nd = "sa" in parts.split("-"), "nc" in parts.split("-"), "nd" in parts.split("-")
    label = "-".join(p.upper() for p in parts.split("-"))
    obligations: list[tuple[str, str]] = [
        (ATTRIBUTION, "Credit the creator, link to the license, and say whether you made changes."),
    ]
    if sa:
        obligations.append((SHARE_ALIKE, "Adaptations you share must be licensed under the same license (or a "
                                         "compatible one)."))
    if nc:
        obligations.append((NON_COMMERCIAL, "Use only for non-commercial purposes."))
    if nd:
        obligations.append((NO_DERIVATIVES, "Do not share adapted versions (fine-tunes, merges, quantizations)."))
    family = "creative-commons"
    return Entry(id_, f"Creative Commons {label} {version}", f"CC-{label}-{version}", family,
                 not nc, not nd, None, tuple(obligations), False)


_RAIL_FLOW_DOWN = (USE_RESTRICTIONS, "Include the license's use-based restrictions (Attachment A) as an "
                                     "enforceable provision in every agreement under which you pass on the model "
                                     "or a derivative, and tell recipients they apply.")
_RAIL_CONTROL = (LICENSOR_CONTROL, "The licensor may restrict (remotely or otherwise) use that violates the "
                                   "license, and expects you to use the latest version of the model.")


def _openrail(id_: str, name: str, spdx: str | None) -> Entry:
    return Entry(id_, name, spdx, "openrail", True, True, None,
                 (_RAIL_FLOW_DOWN, _COPY, _MODS, _RAIL_CONTROL))


_META = "Meta Platforms, Inc."
_USA = "United States"


def _llama(id_: str, version: str, release: str, *, built_with: str, prefix: str,
           notice: str, extra: tuple[tuple[str, str], ...] = (), eu: bool = False) -> Entry:
    obligations: list[tuple[str, str]] = [_COPY]
    if built_with:
        obligations.append((NAMING, f'Prominently display "{built_with}" on a related website, user interface, '
                                    "blog post, about page, or product documentation."))
    if prefix:
        obligations.append((NAMING, f'A model you create, train, fine-tune or improve with {version} materials or '
                                    f'outputs and then distribute must have a name beginning with "{prefix}".'))
    obligations += [
        (NOTICE, f'Keep a "Notice" text file in every copy you distribute, reading: "{notice}"'),
        (AUP, f"Comply with Meta's Acceptable Use Policy for {version}; it is part of the license and its "
              "restrictions apply to your users too."),
        (USER_CAP, f"If your (or your affiliates') products had more than 700 million monthly active users in the "
                   f"month before the {version} release date ({release}), you need a separate license from Meta."),
        *extra,
    ]
    return Entry(id_, f"{version} Community License Agreement", f"LicenseRef-{id_}", "llama", True, True,
                 700_000_000, tuple(obligations), False, _META, _USA, eu)


_EU_MULTIMODAL = (USE_RESTRICTIONS, "The Acceptable Use Policy does not grant the rights to its multimodal models "
                                    "to individuals or companies domiciled in the European Union (end users of "
                                    "products built on them excepted).")

_ALIBABA = "Alibaba Cloud"
# Both Tongyi Qianwen agreements (2023), unlike the 2024 Qwen ones, forbid improving other LLMs (section 4/5 b).
_NO_OTHER_LLM = (USE_RESTRICTIONS, "Do not use the materials or their outputs to improve any other large language "
                                   "model (Tongyi Qianwen and its derivatives excepted).")
_CHINA = "China"

CATALOGUE: Mapping[str, Entry] = {e.id: e for e in (
    _APACHE, _MIT, _BSD2, _BSD3,
    _permissive("bsd", "BSD License (variant not stated)", None),
    _permissive("isc", "ISC License", "ISC"),
    _permissive("bsl-1.0", "Boost Software License 1.0", "BSL-1.0"),
    _permissive("zlib", "zlib License", "Zlib"),
    _permissive("postgresql", "PostgreSQL License", "PostgreSQL"),
    _permissive("ncsa", "University of Illinois/NCSA Open Source License", "NCSA"),
    _permissive("afl-3.0", "Academic Free License 3.0", "AFL-3.0"),
    _permissive("ecl-2.0", "Educational Community License 2.0", "ECL-2.0"),
    _permissive("ms-pl", "Microsoft Public License", "MS-PL"),
    _permissive("cdla-permissive-1.0", "Community Data License Agreement Permissive 1.0", "CDLA-Permissive-1.0",
                osi=False),
    _permissive("cdla-permissive-2.0", "Community Data License Agreement Permissive 2.0", "CDLA-Permissive-2.0",
                osi=False),
    _permissive("odc-by", "Open Data Commons Attribution License", "ODC-By-1.0", osi=False),
    _permissive("etalab-2.0", "Etalab Open License 2.0", "etalab-2.0", osi=False),
    _permissive("ofl-1.1", "SIL Open Font License 1.1", "OFL-1.1"),
    _permissive("openmdw-1.0", "OpenMDW License 1.0", None, osi=False),
    _permissive("openmdw-1.1", "OpenMDW License 1.1", None, osi=False),
    Entry("unlicense", "The Unlicense", "Unlicense", "permissive", True, True, None, (), True),
    Entry("cc0-1.0", "Creative Commons Zero 1.0 (public domain dedication)", "CC0-1.0", "permissive", True, True,
          None, (), False),
    Entry("pddl", "Open Data Commons Public Domain Dedication and License", "PDDL-1.0", "permissive", True, True,
          None, (), False),
    Entry("wtfpl", "WTFPL", "WTFPL", "permissive", True, True, None, (), False),
    _gpl("gpl-2.0", "GNU General Public License v2.0", "GPL-2.0-only"),
    _gpl("gpl-3.0", "GNU General Public License v3.0", "GPL-3.0-only"),
    _gpl("gpl", "GNU General Public License (version not stated)", None),
    _gpl("agpl-3.0", "GNU Affero General Public License v3.0", "AGPL-3.0-only", affero=True),
    _gpl("lgpl-2.1", "GNU Lesser General Public License v2.1", "LGPL-2.1-only", lesser=True),
    _gpl("lgpl-3.0", "GNU Lesser General Public License v3.0", "LGPL-3.0-only", lesser=True),
    _gpl("lgpl", "GNU Lesser General Public License (version not stated)", None, lesser=True),
    _gpl("lgpl-lr", "Lesser General Public License For Linguistic Resources", "LGPLLR", lesser=True),
    _gpl("mpl-2.0", "Mozilla Public License 2.0", "MPL-2.0", lesser=True),
    _gpl("epl-1.0", "Eclipse Public License 1.0", "EPL-1.0", lesser=True),
    _gpl("epl-2.0", "Eclipse Public License 2.0", "EPL-2.0", lesser=True),
    _gpl("artistic-2.0", "Artistic License 2.0", "Artistic-2.0", lesser=True),
    _gpl("eupl-1.1", "European Union Public License 1.1", "EUPL-1.1"),
    _gpl("eupl-1.2", "European Union Public License 1.2", "EUPL-1.2"),
    _gpl("osl-3.0", "Open Software License 3.0", "OSL-3.0"),
    _gpl("gfdl", "GNU Free Documentation License", None),
    _gpl("cdla-sharing-1.0", "Community Data License Agreement Sharing 1.0", "CDLA-Sharing-1.0"),
    _gpl("odbl", "Open Data Commons Open Database License", "ODbL-1.0"),
    _gpl("lppl-1.3c", "LaTeX Project Public License 1.3c", "LPPL-1.3c", lesser=True),
    *(_cc(f"cc-{p}-{v}", v, p) for p, vs in (
        ("by", ("2.0", "2.5", "3.0", "4.0")), ("by-sa", ("3.0", "4.0")), ("by-nc", ("2.0", "3.0", "4.0")),
        ("by-nd", ("4.0",)), ("by-nc-nd", ("3.0", "4.0")), ("by-nc-sa", ("2.0", "3.0", "4.0"))) for v in vs),
    Entry("cc", "Creative Commons (variant not stated)", None, "creative-commons", None, None, None,
          ((ATTRIBUTION, "Credit the creator and link to the license."),
           (REVIEW, "The Creative Commons variant is not stated: check for NonCommercial, NoDerivatives and "
                    "ShareAlike terms before use.")), False),
    _openrail("openrail", "Open RAIL license (variant not stated)", None),
    _openrail("bigscience-openrail-m", "BigScience Open RAIL-M License", "LicenseRef-scancode-bigscience-open-rail-m"),
    _openrail("bigscience-bloom-rail-1.0", "BigScience BLOOM RAIL License v1.0",
              "LicenseRef-scancode-bigscience-rail-1.0"),
    _openrail("bigcode-openrail-m", "BigCode Open RAIL-M v1 License", "LicenseRef-scancode-bigcode-open-rail-m-v1"),
    _openrail("creativeml-openrail-m", "CreativeML Open RAIL-M License",
              "LicenseRef-scancode-stable-diffusion-2022-08-22"),
    _openrail("openrail++", "CreativeML Open RAIL++-M License", "LicenseRef-scancode-bigscience-open-rail-m2"),
    _llama("llama2", "Llama 2", "July 18, 2023", built_with="", prefix="",
           notice="Llama 2 is licensed under the LLAMA 2 Community License, Copyright (c) Meta Platforms, Inc. "
                  "All Rights Reserved.",
           extra=((USE_RESTRICTIONS, "Do not use Llama 2 materials or their outputs to improve any other large "
                                     "language model (Llama 2 derivatives excepted)."),)),
    _llama("llama3", "Meta Llama 3", "April 18, 2024", built_with="Built with Meta Llama 3", prefix="Llama 3",
           notice="Meta Llama 3 is licensed under the Meta Llama 3 Community License, Copyright (c) Meta "
                  "Platforms, Inc. All Rights Reserved."),
    _llama("llama3.1", "Llama 3.1", "July 23, 2024", built_with="Built with Llama", prefix="Llama",
           notice="Llama 3.1 is licensed under the Llama 3.1 Community License, Copyright (c) Meta Platforms, "
                  "Inc. All Rights Reserved."),
    _llama("llama3.2", "Llama 3.2", "September 25, 2024", built_with="Built with Llama", prefix="Llama",
           notice="Llama 3.2 is licensed under the Llama 3.2 Community License, Copyright (c) Meta Platforms, "
                  "Inc. All Rights Reserved.", extra=(_EU_MULTIMODAL,), eu=True),
    _llama("llama3.3", "Llama 3.3", "December 6, 2024", built_with="Built with Llama", prefix="Llama",
           notice="Llama 3.3 is licensed under the Llama 3.3 Community License, Copyright (c) Meta Platforms, "
                  "Inc. All Rights Reserved."),
    _llama("llama4", "Llama 4", "April 5, 2025", built_with="Built with Llama", prefix="Llama",
           notice="Llama 4 is licensed under the Llama 4 Community License, Copyright (c) Meta Platforms, Inc. "
                  "All Rights Reserved.", extra=(_EU_MULTIMODAL,), eu=True),
    Entry("gemma", "Gemma Terms of Use", "LicenseRef-scancode-gemma-tou-2024-04-01", "gemma", True, True, None, (
        (USE_RESTRICTIONS, "Include the use restrictions of section 3.2 (the Gemma Prohibited Use Policy) as an "
                           "enforceable provision in every agreement under which you distribute Gemma or a "
                           "derivative, and give recipients notice of them; offering it as a hosted service counts "
                           "as distribution."),
        (AUP, "Comply with the Gemma Prohibited Use Policy, which Google may update."),
        _COPY,
        (NOTICE, 'Keep a "Notice" text file with every copy, reading: "Gemma is provided under and subject to the '
                 'Gemma Terms of Use found at ai.google.dev/gemma/terms".'),
        _MODS,
        (LICENSOR_CONTROL, "Google may restrict (remotely or otherwise) use it reasonably believes violates the "
                           "terms."),
    ), False, "Google LLC", _USA),
    Entry("tongyi-qianwen", "Tongyi Qianwen License Agreement", "LicenseRef-scancode-tongyi-qianwen-2023", "qwen",
          True, True, 100_000_000, (
              _COPY,
              (NOTICE, 'Keep a "Notice" text file with every copy, reading: "Tongyi Qianwen is licensed under the '
                       'Tongyi Qianwen LICENSE AGREEMENT, Copyright (c) Alibaba Cloud. All Rights Reserved."'),
              (USER_CAP, "Commercial use by a product or service with more than 100 million monthly active users "
                         "needs a license from Alibaba Cloud first."),
              _NO_OTHER_LLM,
          ), False, _ALIBABA, _CHINA),
    Entry("tongyi-qianwen-research", "Tongyi Qianwen Research License Agreement", None, "qwen", False, True, None, (
        (NON_COMMERCIAL, "Research or evaluation use only; commercial use needs a license from Alibaba Cloud."),
        _COPY,
        _MODS,
        (NOTICE, 'Keep a "Notice" text file with every copy, reading: "Tongyi Qianwen is licensed under the '
                 'Tongyi Qianwen RESEARCH LICENSE AGREEMENT, Copyright (c) Alibaba Cloud. All Rights Reserved."'),
        _NO_OTHER_LLM,
    ), False, _ALIBABA, _CHINA),
    Entry("qwen", "Qwen License Agreement", "LicenseRef-scancode-qwen-2024", "qwen", True, True, 100_000_000, (
        _COPY,
        (NOTICE, 'Keep a "Notice" text file with every copy, reading: "Qwen is licensed under the Qwen LICENSE '
                 'AGREEMENT, Copyright (c) Alibaba Cloud. All Rights Reserved."'),
        (NAMING, 'A model trained or improved with Qwen materials or outputs that you distribute must display '
                 '"Built with Qwen" or "Improved using Qwen" in its documentation.'),
        (USER_CAP, "Commercial use by a product or service with more than 100 million monthly active users needs a "
                   "license from Alibaba Cloud first."),
    ), False, _ALIBABA, _CHINA),
    Entry("qwen-research", "Qwen Research License Agreement", None, "qwen", False, True, None, (
        (NON_COMMERCIAL, "Research and other non-commercial use only; commercial use needs a separate license from "
                         "Alibaba Cloud."),
        _COPY,
        (NOTICE, 'Keep a "Notice" text file with every copy, reading: "Qwen is licensed under the Qwen RESEARCH '
                 'LICENSE AGREEMENT, Copyright (c) Alibaba Cloud. All Rights Reserved."'),
        (NAMING, 'A model trained or improved with Qwen materials or outputs that you distribute must display '
                 '"Built with Qwen" or "Improved using Qwen" in its documentation.'),
    ), False, _ALIBABA, _CHINA),
    Entry("deepseek", "DeepSeek License Agreement", "LicenseRef-scancode-deepseek-la-1.0", "deepseek", True, True,
          None, (_RAIL_FLOW_DOWN, _COPY, _MODS,
                 (LICENSOR_CONTROL, "DeepSeek may restrict (remotely or otherwise) use that violates the license.")),
          False, "Hangzhou DeepSeek Artificial Intelligence Co., Ltd.", _CHINA),
    Entry("mistral-research", "Mistral AI Research License (MRL)", None, "mistral", False, True, None, (
        (NON_COMMERCIAL, "Research purposes only: any commercial or production use, including by your employer, "
                         "needs a separate commercial license from Mistral AI."),
        _COPY,
        (ATTRIBUTION, "Keep Mistral AI's notices and say that derivatives were modified."),
    ), False, "Mistral AI", "France"),
    Entry("mistral-non-production", "Mistral AI Non-Production License (MNPL)", None, "mistral", False, True, None, (
        (NON_COMMERCIAL, "Non-production use only (testing, research, personal or evaluation); any production or "
                         "commercial use needs a license from Mistral AI."),
        _COPY,
        (ATTRIBUTION, "Keep Mistral AI's notices and say that derivatives were modified."),
    ), False, "Mistral AI", "France"),
    *(Entry(i, n, None, "other", False, True, None, (
        (NON_COMMERCIAL, "Research or other non-commercial use only (read the license for its exact scope)."),
        _COPY), False) for i, n in (
        ("fair-noncommercial-research-license", "FAIR Noncommercial Research License"),
        ("deepfloyd-if-license", "DeepFloyd IF License Agreement"),
        ("c-uda", "Computational Use of Data Agreement"),
        ("h-research", "H Research License"),
        ("intel-research", "Intel Research Use License"),
        ("apple-amlr", "Apple Machine Learning Research Model License"),
        ("apple-ascl", "Apple Sample Code License"))),
    Entry("grok2-community", "Grok 2 Community License Agreement", None, "other", None, None, None, (
        (REVIEW, "aivet has no summary of this license yet: read it and record its obligations by hand."),
        _COPY), False, "xAI", _USA),
    Entry("nvidia-open-model", "NVIDIA Open Model License", "LicenseRef-scancode-nvidia-open-model-2025-04-28",
          "other", True, True, None, (
              _COPY,
              (NOTICE, "Keep NVIDIA's attribution notice with every copy you distribute."),
              (REVIEW, "Rights end if you bypass or disable the model's guardrails without a substantially "
                       "similar replacement: check the license."),
          ), False, "NVIDIA Corporation", _USA),
    Entry("other", "Other license (not identified)", None, "other", None, None, None, (
        (REVIEW, "The license is not one aivet recognises: read it and record its obligations by hand."),
    ), False),
    Entry("unknown", "No license found", None, "unknown", None, None, None, (
        (REVIEW, "No license was found: without one no rights are granted. Ask the publisher to state a license "
                 "before use."),
    ), False),
)}

# Hugging Face ``license:`` ids (and ``license_name:`` values) that are not our ids verbatim.
HF_IDS: Mapping[str, str] = {
    **{k: k for k in CATALOGUE},
    "bsd-3-clause-clear": "bsd-3-clause",
    "cc-by-2.5": "cc-by-2.5",
    "llama-2": "llama2", "llama-3": "llama3", "llama-3.1": "llama3.1", "llama-3.2": "llama3.2",
    "llama-3.3": "llama3.3", "llama-4": "llama4", "llama3_1": "llama3.1", "llama3_2": "llama3.2",
    "llama3_3": "llama3.3",
    "tongyi-qianwen": "tongyi-qianwen", "tongyi-qianwen-license": "tongyi-qianwen", "qwen-license": "qwen",
    "tongyi-qianwen-license-agreement": "tongyi-qianwen",
    "tongyi-qianwen-research-license-agreement": "tongyi-qianwen-research",
    "tongyi-qianwen-research-license": "tongyi-qianwen-research",
    "qwen-research-license": "qwen-research",
    "deepseek-license": "deepseek", "deepseek-model-license": "deepseek",
    "mrl": "mistral-research", "mistral-research-license": "mistral-research", "mrl-0.1": "mistral-research",
    "mnpl": "mistral-non-production", "mnpl-0.1": "mistral-non-production",
    "gemma-terms-of-use": "gemma",
    "nvidia-open-model-license": "nvidia-open-model",
}

# license_link URLs (lower-cased substrings) that name a license unambiguously.
LINK_HINTS: tuple[tuple[str, str], ...] = (
    ("mistral.ai/licenses/mrl", "mistral-research"), ("mistral.ai/licences/mrl", "mistral-research"),
    ("mistral.ai/licenses/mnpl", "mistral-non-production"), ("mistral.ai/licences/mnpl", "mistral-non-production"),
    ("ai.google.dev/gemma/terms", "gemma"),
    ("llama3_1/license", "llama3.1"), ("llama3_2/license", "llama3.2"), ("llama3_3/license", "llama3.3"),
    ("llama4/license", "llama4"), ("llama3/license", "llama3"), ("llama-2/license", "llama2"),
    ("/qwen-research", "qwen-research"), ("license-model", "deepseek"),
    ("tongyi%20qianwen%20research", "tongyi-qianwen-research"), ("tongyi qianwen research", "tongyi-qianwen-research"),
    ("tongyi%20qianwen%20license", "tongyi-qianwen"), ("tongyi qianwen license", "tongyi-qianwen"),
)


@dataclass(frozen=True)
class Fingerprint:
    """How to recognise a license text.

    ``anchors``: normalised phrases, one of which must appear in the first
    :data:`HEAD_WORDS` words (a title, or an opening sentence; ``a && b``
    needs ``a`` there and ``b`` anywhere) -- the first
    fingerprint whose anchor is found wins, so more specific ones come first.
    ``required``: ``(phrase or regex, what it stands for)`` pairs that a
    faithful copy keeps; a text missing one is *altered*. ``canonical``: the
    normalised canonical text where we ship it (short permissive licenses),
    compared by word shingles.
    """

    license_id: str
    anchors: tuple[str, ...]
    required: tuple[tuple[str, str], ...] = ()
    canonical: str = ""


HEAD_WORDS = 150  # titles sit in the first lines; deeper hits are cross-references (MPL-2.0 names the AGPL)

_LLAMA_REQUIRED = (
    (r"greater than 700 million monthly active users", "the 700 million monthly active users clause"),
    (r"acceptable use policy", "the Acceptable Use Policy incorporated into the license"),
    (r"(?:ai meta com|llama meta com|llama com)(?: [a-z0-9]+){0,3} use policy",
     "the reference to Meta's published Acceptable Use Policy"),
)
_LLAMA3_REQUIRED = (*_LLAMA_REQUIRED, (r"built with (?:meta )?llama", 'the "Built with Llama" display clause'))
# Checked against the published DeepSeek LICENSE-MODEL: "attachment a" alone also matches paragraph 5's
# cross-reference, so a copy without the Attachment A list passed; the heading itself is required now.
_DEEPSEEK_REQUIRED = (
    (r"attachment a use restrictions", "the Attachment A list of restricted uses"),
    (r"restrictions set forth in attachment a are considered use based restrictions",
     "the use-based restrictions of paragraph 5"),
    (r"use based restrictions as referenced in paragraph 5 must be included as an enforceable provision",
     "the flow-down of the use-based restrictions"),
    (r"restrict remotely or otherwise", "DeepSeek's right to restrict use remotely"),
    # The heading alone is not enough: a copy that keeps it but drops the list under it (or only the
    # military line) restricts nothing.
    (r"you agree not to use the model or derivatives of the model", "the list of restricted uses under Attachment A"),
    (r"for military use", "the ban on military use (Attachment A)"),
)
_QWEN_BUILT_WITH = (r"built with qwen", 'the "Built with Qwen" display clause')
# Mistral's MRL and MNPL confine use in section 3.2; the definitions of "Research Purposes" and
# "Non-Production Environment" stay in a copy that drops the limitation, so the pattern starts at
# "only use the Mistral Models" and allows the words between it and the purpose (bounded gap).
_MISTRAL_ONLY_USE = r"only use the mistral models?(?: [a-z]+){0,24}"
_TONGYI_LLM_BAN = (r"improve any other large language model", "the ban on improving other large language models")
_RAIL_REQUIRED = ((r"attachment a", "the restricted uses of Attachment A"),
                  (r"(?:use based restrictions|restrictions in attachment a)", "the use-based restrictions clause"),
                  (r"restrict remotely or otherwise", "the licensor's right to restrict use remotely"))

MIT_TEXT = (
    "Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated "
    "documentation files (the \"Software\"), to deal in the Software without restriction, including without "
    "limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the "
    "Software, and to permit persons to whom the Software is furnished to do so, subject to the following "
    "conditions: The above copyright notice and this permission notice shall be included in all copies or "
    "substantial portions of the Software. THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, "
    "EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR "
    "PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, "
    "DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN "
    "CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.")
_BSD_HEAD = (
    "Redistribution and use in source and binary forms, with or without modification, are permitted provided that "
    "the following conditions are met: Redistributions of source code must retain the above copyright notice, this "
    "list of conditions and the following disclaimer. Redistributions in binary form must reproduce the above "
    "copyright notice, this list of conditions and the following disclaimer in the documentation and/or other "
    "materials provided with the distribution. ")
_BSD_TAIL = (
    "THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS \"AS IS\" AND ANY EXPRESS OR IMPLIED "
    "WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A "
    "PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE FOR ANY "
    "DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO, "
    "PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER "
    "CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR "
    "OTHERWISE) ARISING IN ANY WAY OUT OF THE USE OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH "
    "DAMAGE.")
BSD2_TEXT = _BSD_HEAD + _BSD_TAIL
BSD3_TEXT = (_BSD_HEAD + "Neither the name of the copyright holder nor the names of its contributors may be used to "
             "endorse or promote products derived from this software without specific prior written permission. "
             + _BSD_TAIL)

# Order matters: the first fingerprint with an anchor in the head wins (Lesser/Affero before plain GPL,
# Llama versions before the generic ones, NonCommercial-ShareAlike before NonCommercial).
FINGERPRINTS: tuple[Fingerprint, ...] = (
    Fingerprint("llama4", ("llama 4 community license",), _LLAMA3_REQUIRED),
    Fingerprint("llama3.3", ("llama 3 3 community license",), _LLAMA3_REQUIRED),
    Fingerprint("llama3.2", ("llama 3 2 community license",), _LLAMA3_REQUIRED),
    Fingerprint("llama3.1", ("llama 3 1 community license",), _LLAMA3_REQUIRED),
    Fingerprint("llama3", ("meta llama 3 community license",), _LLAMA3_REQUIRED),
    Fingerprint("llama2", ("llama 2 community license",), (
        *_LLAMA_REQUIRED,
        (r"to improve any other large language model", "the ban on improving other large language models"))),
    Fingerprint("gemma", ("gemma terms of use",), (
        (r"prohibited use policy", "the Gemma Prohibited Use Policy"),
        (r"enforceable provision", "the flow-down of the use restrictions"),
        (r"restrict remotely or otherwise", "Google's right to restrict use remotely"))),
    # "non commercial purposes" is the grant's limitation; a bare "non commercial" also matched the
    # definition of Non-Commercial, which stays when the limitation is cut from the grant.
    Fingerprint("qwen-research", ("qwen research license agreement",), (
        (r"non commercial purposes", "the non-commercial limitation of the grant"), _QWEN_BUILT_WITH)),
    Fingerprint("tongyi-qianwen-research", ("tongyi qianwen research license agreement",), (
        (r"non commercial purposes", "the non-commercial limitation of the grant"), _TONGYI_LLM_BAN)),
    Fingerprint("tongyi-qianwen", ("tongyi qianwen license agreement",), (
        (r"100 million monthly active users", "the 100 million monthly active users clause"), _TONGYI_LLM_BAN)),
    Fingerprint("qwen", ("qwen license agreement",), (
        (r"100 million monthly active users", "the 100 million monthly active users clause"), _QWEN_BUILT_WITH)),
    Fingerprint("deepseek", ("deepseek license agreement",), _DEEPSEEK_REQUIRED),
    Fingerprint("mistral-non-production", ("mistral ai non production license",), (
        (rf"{_MISTRAL_ONLY_USE} non production environments", "the limitation to non-production environments"),)),
    Fingerprint("mistral-research", ("mistral ai research license",), (
        (rf"{_MISTRAL_ONLY_USE} research purposes", "the limitation to research purposes"),)),
    Fingerprint("openrail++", ("rail plusplus m",), _RAIL_REQUIRED),
    Fingerprint("creativeml-openrail-m", ("creativeml open rail m",), _RAIL_REQUIRED),
    Fingerprint("bigcode-openrail-m", ("bigcode open rail m",), _RAIL_REQUIRED),
    Fingerprint("bigscience-bloom-rail-1.0", ("bigscience rail license v1 0",), _RAIL_REQUIRED),
    Fingerprint("bigscience-openrail-m", ("bigscience open rail m",), _RAIL_REQUIRED),
    Fingerprint("mpl-2.0", ("mozilla public license version 2 0",), (
        (r"covered software", "the file-level copyleft on Covered Software"),)),
    Fingerprint("agpl-3.0", ("gnu affero general public license version 3",), (
        (r"remote network interaction", "section 13, source for network users"),)),
    Fingerprint("lgpl-3.0", ("gnu lesser general public license version 3",)),
    Fingerprint("lgpl-2.1", ("gnu lesser general public license version 2 1",)),
    Fingerprint("gpl-3.0", ("gnu general public license version 3 29 june 2007",), (
        (r"corresponding source", "the duty to provide corresponding source"),)),
    Fingerprint("gpl-2.0", ("gnu general public license version 2 june 1991",), (
        (r"source code", "the duty to provide source code"),)),
    Fingerprint("apache-2.0", ("apache license version 2 0 january 2004",), (
        (r"grant of patent license", "the patent grant (section 3)"),
        (r"redistribution you may reproduce and distribute copies", "the redistribution conditions (section 4)"))),
    Fingerprint("cc-by-nc-sa-4.0", ("attribution noncommercial sharealike 4 0 international",)),
    Fingerprint("cc-by-nc-nd-4.0", ("attribution noncommercial noderivatives 4 0 international",)),
    Fingerprint("cc-by-nc-4.0", ("attribution noncommercial 4 0 international",)),
    Fingerprint("cc-by-nd-4.0", ("attribution noderivatives 4 0 international",)),
    Fingerprint("cc-by-sa-4.0", ("attribution sharealike 4 0 international",)),
    Fingerprint("cc-by-4.0", ("attribution 4 0 international",)),
    Fingerprint("mit", ("permission is hereby granted free of charge to any person obtaining a copy",),
                canonical=MIT_TEXT),
    Fingerprint("isc", ("permission to use copy modify && for any purpose with or without fee is hereby granted",)),
    Fingerprint("bsd-3-clause", ("redistribution and use in source and binary forms && neither the name of",),
                canonical=BSD3_TEXT),
    Fingerprint("bsd-2-clause", ("redistribution and use in source and binary forms",), canonical=BSD2_TEXT),
)

# USE_POLICY.md files: the acceptable-use policies a Llama or Gemma license incorporates.
POLICY_FINGERPRINTS: tuple[tuple[str, str], ...] = (
    ("llama 4 acceptable use policy", "llama4"), ("llama 3 3 acceptable use policy", "llama3.3"),
    ("llama 3 2 acceptable use policy", "llama3.2"), ("llama 3 1 acceptable use policy", "llama3.1"),
    ("meta llama 3 acceptable use policy", "llama3"), ("llama 2 acceptable use policy", "llama2"),
    ("gemma prohibited use policy", "gemma"),
)

# Hub organisations whose publisher and home country are public facts (for origin facts).
KNOWN_PUBLISHERS: Mapping[str, tuple[str, str]] = {
    "meta-llama": (_META, _USA), "facebook": (_META, _USA),
    "qwen": (_ALIBABA, _CHINA),
    "deepseek-ai": ("Hangzhou DeepSeek Artificial Intelligence Co., Ltd.", _CHINA),
    "mistralai": ("Mistral AI", "France"),
    "google": ("Google LLC", _USA),
    "microsoft": ("Microsoft Corporation", _USA),
    "nvidia": ("NVIDIA Corporation", _USA),
    "tiiuae": ("Technology Innovation Institute", "United Arab Emirates"),
    "bigscience": ("BigScience (Hugging Face-led workshop)", "France"),
    "bigcode": ("BigCode (Hugging Face and ServiceNow)", _USA),
    "stabilityai": ("Stability AI Ltd", "United Kingdom"),
    "01-ai": ("01.AI", _CHINA),
    "thudm": ("Zhipu AI / Tsinghua University (THUDM)", _CHINA),
    "zai-org": ("Zhipu AI", _CHINA),
    "internlm": ("Shanghai AI Laboratory", _CHINA),
    "baichuan-inc": ("Baichuan Intelligent Technology", _CHINA),
    "moonshotai": ("Moonshot AI", _CHINA),
    "lgai-exaone": ("LG AI Research", "South Korea"),
    "cohereforai": ("Cohere", "Canada"), "coherelabs": ("Cohere", "Canada"),
    "ibm-granite": ("IBM", _USA),
    "allenai": ("Allen Institute for AI", _USA),
    "xai-org": ("xAI", _USA),
    "openai": ("OpenAI", _USA),
}

# SHA-256 of ``licenses.normalise(text)`` of published license texts, to tell a verbatim copy
# from one that keeps every key clause but is worded differently. Digests only: no text is
# shipped. Llama: the LICENSE files in Meta's llama-models repository (models/<version>/).
# The others were checked on 2026-11-23 (docs/licenses.md lists the sources); where the publisher's
# file was not in a public Git repository, the digest is of ScanCode LicenseDB's copy
# (aboutcode-org/scancode-toolkit, src/licensedcode/data/licenses/<key>.LICENSE, text after the
# YAML header), which a verbatim Hugging Face LICENSE file matches only if its words are the same.
PUBLISHED_TEXT_SHA256: Mapping[str, frozenset[str]] = {
    "llama2": frozenset({"33f76a5626a6057b40eb3948b0cb269cf4a8e9eb2805be5e348d1cf5e46c79b0"}),
    "llama3": frozenset({"b523b6ec93be3b97d0ed8aff5c50b1cbfe0fd3b54a4d49165ba9262946ae6e6d"}),
    "llama3.1": frozenset({"fd65f04be09770910b4dfefc337acd4e4d1db6d736f518679a82d16f6ce696ab"}),
    "llama3.2": frozenset({"2ea50793837ad3af5492e51540c4f37b48539d9e19764f7646db15b9e72bf672"}),
    "llama3.3": frozenset({"a167cc385a8b96d1635223f8bc9bc27104cf78d245a0e6b403062cf0b1e4e532"}),
    "llama4": frozenset({"4b00eed363b5c5c8c64b2de02d469c33f6f871f9898e8a963c36e1e8f0b87da6"}),
    # deepseek-ai/DeepSeek-V3, DeepSeek-V2, DeepSeek-Coder and DeepSeek-VL: LICENSE-MODEL (all four the same).
    "deepseek": frozenset({"a9e36cc20981b42f99d6ee087f7773b23891abcae47205878093053cd48ed63d"}),
    # QwenLM/Qwen: "Tongyi Qianwen LICENSE AGREEMENT" (release date August 3, 2023).
    "tongyi-qianwen": frozenset({"76c826605dbeef3bf72506415f2ec690fb2779a618d4dcffaa4fb09123b4288d"}),
    # QwenLM/Qwen: "Tongyi Qianwen RESEARCH LICENSE AGREEMENT" (release date November 30, 2023).
    "tongyi-qianwen-research": frozenset({"833d6d7466671d563ad3c1105479072be0f7ea57203d242efa91b40ca3ac2a11"}),
    # ScanCode qwen-2024.LICENSE (copy of Qwen/Qwen2.5-72B LICENSE, release date September 19, 2024).
    "qwen": frozenset({"17b27db6aaf3133b2fbca987b27e0f5c986b4e55c7247697f2900c111fe9f22f"}),
    # ScanCode qwen-research-2024.LICENSE (copy of Qwen/Qwen2.5-3B LICENSE, release date September 19, 2024).
    "qwen-research": frozenset({"c1dfa7d864b1d71889671df3e85a422462440b085263f0c6f639fbd033979b69"}),
    # ScanCode gemma-tou-2024-04-01.LICENSE (Gemma Terms of Use, last modified April 1, 2024; later
    # revisions of the terms differ and are reported with confidence 0.8, "wording differs").
    "gemma": frozenset({"92a176f557292a97d75165492ffd0984cb9db3b0b639fbf739ec41d55c08343c"}),
}
