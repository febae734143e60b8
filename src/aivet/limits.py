"""Every bound on untrusted input, in one place.

Readers receive a :class:`Limits` and enforce it where they read bytes.
Exceeding a limit is never a crash: the reader stops and reports a
``LIMIT-EXCEEDED`` finding naming the limit (the artifact is then PARTIAL).
"""

from __future__ import annotations

from dataclasses import dataclass

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


@dataclass(frozen=True)
class Limits:
    # Pickle emulation
    max_pickle_opcodes: int = 50_000_000
    max_pickle_stack_depth: int = 100_000
    max_pickle_bytes: int = 2 * GiB  # a pickle stream larger than this is only partly analysed
    max_pickle_nesting: int = 8  # pickles inside pickles (bytes that are themselves pickles)
    max_reported_calls_per_global: int = 20  # after that, calls are counted, not listed
    # Containers and archives
    max_archive_depth: int = 6
    max_archive_members: int = 100_000
    max_member_bytes: int = 4 * GiB  # largest member we decompress to analyse
    max_total_uncompressed: int = 16 * GiB  # per top-level archive
    max_compression_ratio: float = 200.0  # above this a member is treated as a bomb
    max_zip_sequence: int = 100_000  # zip archives back to back in one file (a DCP shard: one per tensor)
    in_memory_member_bytes: int = 64 * MiB  # members up to this are decompressed in memory
    # Headers and metadata
    max_header_bytes: int = 100 * MiB  # safetensors JSON header, GGUF metadata, npy header
    max_metadata_entries: int = 100_000  # GGUF key/values and tensor infos (real: < 5,000; ~350 bytes of Python each)
    max_array_strings: int = 4_000_000  # strings in one GGUF array, walked, not kept (real merge lists: < 400,000)
    max_string_bytes: int = 16 * MiB  # one metadata string (a chat template, a JSON config)
    max_metadata_depth: int = 16  # nested GGUF arrays (llama.cpp itself reads none)
    max_template_bytes: int = 512 * KiB  # chat-template text parsed per file (real: < 50 KiB each, 1-3 per file)
    max_template_steps: int = 3_000_000  # chat-template analysis steps (~0.5 us each); benign 512 KiB use < 1.5 M
    max_templates_per_file: int = 16  # chat templates analysed per GGUF or config file (real ones have 1 to 3)
    max_npy_header_bytes: int = 64 * KiB  # .npy header parsed as a literal (~1 KiB per token); numpy writes < 10 KB
    max_text_file_bytes: int = 8 * MiB  # Python, JSON, Jinja files read whole
    max_protobuf_bytes: int = 512 * MiB  # ONNX / SavedModel graphs parsed (weights are skipped)
    max_protobuf_depth: int = 64
    max_hdf5_objects: int = 20_000  # HDF5 groups/datasets visited from the root
    max_hdf5_messages: int = 1_000_000  # object header messages read in one HDF5 file
    max_hdf5_metadata_bytes: int = 1 * GiB  # HDF5 metadata (headers, heaps, B-trees) read per file
    # Safetensors bytes no tensor claims (gaps, trailing data): regions sniffed, and regions analysed as files
    max_inspected_regions: int = 1_000
    max_analysed_regions: int = 20
    # Repository text: remote code, configs, secrets
    max_json_bytes: int = 64 * MiB  # JSON parsed whole (tokenizer.json of large-vocabulary models is ~35 MiB)
    max_json_cost: int = 384 * MiB  # estimated decode memory of one JSON document or header (real: < 220 MiB)
    max_jsonl_lines: int = 1_000_000  # JSON lines parsed per .jsonl file (each costs Python work)
    max_python_tokens: int = 200_000  # Python tokens parsed per file, decoded code included (real: < 100,000)
    max_secret_candidates: int = 5_000  # matches examined per secret pattern and text (each costs Python work)
    max_decoded_bytes: int = 1 * MiB  # a payload decoded from base64/hex/zlib in Python source
    max_decode_depth: int = 4  # decoded code that itself decodes code, analysed this many levels deep
    max_fold_steps: int = 1_000_000  # constant-folding steps per Python file and the code decoded from it
    max_findings_per_file: int = 200  # after that, one finding says how many more were dropped
    # YAML configs (composed to nodes, never constructed; an alias is one event, not a copy)
    max_yaml_events: int = 500_000  # nodes + aliases per file (NeMo configs ~2,000; a few s, ~250 MiB at the bound)
    max_yaml_depth: int = 256  # nesting (real configs < 20; PyYAML's own recursive composer fails near 300)
    max_yaml_documents: int = 1_000  # documents in one stream (model configs have one)
    # Repository walk
    max_files: int = 1_000_000
    max_seconds_per_file: float = 300.0
    # Ledger exports (untrusted files handed in for audit or import)
    max_ledger_line_bytes: int = 128 * MiB  # one entry of an export, body included
    max_ledger_problems: int = 100  # verify lists this many problems, then counts the rest
    # Lineage (weight fingerprints sample a bounded number of values per tensor)
    max_lineage_tensors: int = 4096  # tensors sampled per model; the fingerprint says when more were left out
    # Model cards (README front matter is YAML: parsed with aliases refused, bounded in size and depth)
    max_front_matter_bytes: int = 256 * KiB  # real cards with a model-index of eval results are < 100 KiB
    # License files (LICENSE, NOTICE, USE_POLICY.md): only this prefix is matched; real ones are < 64 KiB
    max_license_file_bytes: int = 1 * MiB


DEFAULT_LIMITS = Limits()
