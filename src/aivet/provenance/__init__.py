"""Provenance: sign and verify model directories in the OpenSSF Model Signing format.

Modules, by layer: :mod:`~aivet.provenance.hashing` (parallel, bounded
hashing and the digest cache), :mod:`~aivet.provenance.manifest` (the
in-toto statement), :mod:`~aivet.provenance.bundle` (Sigstore bundle and
DSSE), :mod:`~aivet.provenance.keys` and :mod:`~aivet.provenance.pki` (key
and certificate checks), :mod:`~aivet.provenance.signing` and
:mod:`~aivet.provenance.verify` (the two operations). Nothing is imported
here so that ``import aivet`` stays fast; import the module you need.
"""
