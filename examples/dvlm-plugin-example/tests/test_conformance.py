"""The plugin package's own tests: dvlm's conformance kit run against this package's kinds."""

from dvlm.testing import check_kind, kinds_to_check, parametrize_kinds


def test_the_package_registers_its_kind():
    assert ("schedules", "geometric") in kinds_to_check(distribution="dvlm-plugin-example")


@parametrize_kinds(distribution="dvlm-plugin-example")
def test_conformance(family, kind):
    check_kind(family, kind)
