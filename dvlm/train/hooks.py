"""Training's plugin hooks: it declares the ``spec: train`` document type (core never imports training)."""

import dvlm


@dvlm.hookimpl
def dvlm_document_types(register):
    register("train", "dvlm.train.spec:TrainSpec")
