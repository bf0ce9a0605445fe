"""Every registered kind of every family honours its family's contract (the same kit plugin authors use)."""

from dvlm.testing import check_kind, parametrize_kinds


@parametrize_kinds()
def test_registered_kind_conforms(family, kind):
    check_kind(family, kind)
