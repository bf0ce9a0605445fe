import pytest

from dvlm.bench.matrix import expand_matrix
from dvlm.core.errors import SpecError

BASE = {"train": {"masking": {"kind": "uniform"}, "steps": 10}, "sampler": {"kind": "fixed", "cache": {"kind": "none"}}}
AXES = {
    "masking": {"uniform": {"train.masking": {"kind": "uniform"}},
                "complementary": {"train.masking": {"kind": "complementary"}}},
    "cache": {"none": {"sampler.cache": {"kind": "none"}}, "prefix": {"sampler.cache": {"kind": "prefix"}}},
    "nfe": {"50%": {"sampler.step_ratio": 0.5}, "100%": {"sampler.step_ratio": 1.0}},
}


def test_cartesian_product_in_axis_order():
    cells = expand_matrix(BASE, AXES)
    assert len(cells) == 8
    assert cells[0].axes == {"masking": "uniform", "cache": "none", "nfe": "50%"}
    assert cells[-1].name == "masking=complementary,cache=prefix,nfe=100%"


def test_overrides_apply_to_copies_of_the_base():
    cells = expand_matrix(BASE, AXES)
    cell = next(c for c in cells if c.axes == {"masking": "complementary", "cache": "prefix", "nfe": "50%"})
    assert cell.run["train"] == {"masking": {"kind": "complementary"}, "steps": 10}
    assert cell.run["sampler"] == {"kind": "fixed", "cache": {"kind": "prefix"}, "step_ratio": 0.5}
    assert BASE["sampler"] == {"kind": "fixed", "cache": {"kind": "none"}}  # base untouched


def test_exclusions_drop_every_matching_cell():
    cells = expand_matrix(BASE, AXES, exclude=[{"masking": "uniform", "cache": "prefix"}, {"nfe": "100%"}])
    assert {c.name for c in cells} == {
        "masking=uniform,cache=none,nfe=50%", "masking=complementary,cache=none,nfe=50%",
        "masking=complementary,cache=prefix,nfe=50%",
    }


def test_an_empty_product_is_an_error():
    with pytest.raises(SpecError, match="matrix is empty"):
        expand_matrix(BASE, {"cache": AXES["cache"]}, exclude=[{"cache": "none"}, {"cache": "prefix"}])


def test_an_axis_without_values_is_an_error():
    with pytest.raises(SpecError, match="axes.cache has no values"):
        expand_matrix(BASE, {"cache": {}})


def test_override_of_a_path_missing_from_the_base_names_axis_and_value():
    axes = {"cache": {"none": {"samplr.cache": {"kind": "none"}}}}
    with pytest.raises(SpecError, match=r"axes.cache.none: path 'samplr.cache' does not exist.*sampler, train"):
        expand_matrix(BASE, axes)


def test_exclusion_naming_an_unknown_axis_or_value_is_an_error():
    with pytest.raises(SpecError, match="exclude\\[0\\] names axis 'cash'"):
        expand_matrix(BASE, AXES, exclude=[{"cash": "none"}])
    with pytest.raises(SpecError, match="has no value 'full'"):
        expand_matrix(BASE, AXES, exclude=[{"cache": "full"}])
