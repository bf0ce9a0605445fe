"""Conformance kit: checks that any registered kind, built-in or third-party, honours its family's contract.

A plugin package tests its own kinds with::

    from dvlm.testing import parametrize_kinds, check_kind

    @parametrize_kinds(distribution="my-dvlm-plugin")
    def test_conformance(family, kind):
        check_kind(family, kind)

dvlm's own suite parametrizes the same way over every registered kind of every family. A checkpoint layout
also runs ``check_layout_round_trip(kind, tiny_model, tmp_path)``: write, detect, read back identically.
"""

from dvlm.testing.checkpoints import check_layout_round_trip
from dvlm.testing.conformance import FAMILY_CHECKS, check_kind, check_params_model, kinds_to_check, parametrize_kinds

__all__ = ["FAMILY_CHECKS", "check_kind", "check_layout_round_trip", "check_params_model", "kinds_to_check",
           "parametrize_kinds"]
