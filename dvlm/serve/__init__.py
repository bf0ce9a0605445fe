"""``dvlm serve``: a local web page that shows an answer being denoised step by step (``dvlm.serve.app``).

Needs the ``serve`` extra (starlette, uvicorn, python-multipart); never imported by ``import dvlm``.
"""
