"""Benchmarks' plugin hooks: they declare the ``spec: matrix`` document type (core never imports benchmarks)."""

import dvlm


@dvlm.hookimpl
def dvlm_document_types(register):
    register("matrix", "dvlm.bench.spec:MatrixSpec")
