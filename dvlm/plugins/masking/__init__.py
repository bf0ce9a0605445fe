"""Training-time masking strategies: uniform (LLaDA) and complementary (LaViDa).

Registration imports only the params models; the strategies (torch) load on first build.
Infilling augmentation (LaViDa-FIM) is a data transform over answer text: see ``fim.py``.
"""

import dvlm
from dvlm.plugins.masking.params import ComplementaryMaskingParams, UniformMaskingParams


@dvlm.hookimpl
def dvlm_register_masking_strategies(register):
    register("uniform", "dvlm.plugins.masking.strategies:UniformMasking", UniformMaskingParams)
    register("complementary", "dvlm.plugins.masking.strategies:ComplementaryMasking", ComplementaryMaskingParams)
