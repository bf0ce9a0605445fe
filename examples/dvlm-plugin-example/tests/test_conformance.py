"""The plugin package's own tests: dvlm's conformance kit run against this package's kinds."""

from dvlm.testing import check_kind, kinds_to_check, parametrize_kinds


def test_the_package_registers_its_kinds():
    kinds = kinds_to_check(distribution="dvlm-plugin-example")
    assert {("schedules", "geometric"), ("backbones", "toy_mdm"), ("checkpoint_layouts", "toy-lab"),
            ("commit_rules", "leftmost")} <= set(kinds)


@parametrize_kinds(distribution="dvlm-plugin-example")
def test_conformance(family, kind):
    check_kind(family, kind)
