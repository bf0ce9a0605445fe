import json

import pytest

from dvlm.core.errors import SpecError
from dvlm.core.specs import json_schema, load_spec, parse_spec, spec_hash

TOY = {"spec": "model", "backbone": {"kind": "toy", "width": 16, "schedule": {"kind": "toy_even", "steps_hint": 3}}}


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yaml_and_json_load_to_the_same_frozen_spec(tmp_path, toy_plugin):
    yaml_spec = load_spec(write(tmp_path, "a.yaml", "spec: model\nbackbone:\n  kind: toy\n  width: 16\n"))
    json_spec = load_spec(write(tmp_path, "a.json", json.dumps({"spec": "model", "backbone": {"kind": "toy", "width": 16}})))
    assert yaml_spec == json_spec
    assert yaml_spec.backbone.width == 16
    with pytest.raises(Exception, match="frozen"):
        yaml_spec.backbone.width = 3


def test_alias_validates_like_the_kind(toy_plugin):
    spec = parse_spec({"spec": "model", "backbone": {"kind": "toy_alias", "width": 2}})
    assert spec.backbone.kind == "toy"
    assert spec_hash(spec) == spec_hash(parse_spec({"spec": "model", "backbone": {"kind": "toy", "width": 2}}))


def test_typo_names_the_file_the_field_path_and_the_value(tmp_path, toy_plugin):
    path = write(tmp_path, "typo.yaml", "spec: model\nbackbone:\n  kind: toy\n  schedule:\n    kind: toy_even\n    stepz_hint: 3\n")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert str(path) in message
    assert "backbone.schedule.stepz_hint" in message  # union tags are not part of the user's path
    assert "(got 3)" in message


def test_constraint_violation_names_the_path(toy_plugin):
    with pytest.raises(SpecError, match=r"<spec>: backbone.width: Input should be greater than or equal to 1 \(got 0\)"):
        parse_spec({"spec": "model", "backbone": {"kind": "toy", "width": 0}})


def test_unknown_kind_in_a_spec_lists_the_kinds_and_suggests_the_closest(toy_plugin):
    with pytest.raises(SpecError, match=r"backbone: .*'toy'.*Did you mean 'toy'\?"):
        parse_spec({"spec": "model", "backbone": {"kind": "tyo"}})


def test_yaml_syntax_error_gives_the_line(tmp_path):
    path = write(tmp_path, "broken.yaml", "spec: model\nbackbone:\n  kind: toy\n   width: 3\n")
    with pytest.raises(SpecError, match=r"broken.yaml line 4, column \d+: invalid YAML"):
        load_spec(path)


def test_json_syntax_error_gives_the_line(tmp_path):
    path = write(tmp_path, "broken.json", '{\n "spec": "model",\n "backbone": {kind: 1}\n}')
    with pytest.raises(SpecError, match=r"broken.json line 3"):
        load_spec(path)


def test_missing_document_type_says_how_to_fix():
    with pytest.raises(SpecError, match="spec: must name the document type.*`spec: model`"):
        parse_spec({"backbone": {}})


def test_hash_is_stable_under_key_order(toy_plugin):
    reordered = {"backbone": {"schedule": {"steps_hint": 3, "kind": "toy_even"}, "width": 16, "kind": "toy"}, "spec": "model"}
    assert spec_hash(parse_spec(TOY)) == spec_hash(parse_spec(reordered))


def test_hash_includes_defaults(toy_plugin):
    explicit = parse_spec({"spec": "model", "backbone": {"kind": "toy", "width": 8}})
    implicit = parse_spec({"spec": "model", "backbone": {"kind": "toy"}})
    assert spec_hash(explicit) == spec_hash(implicit)  # the resolved spec is what is hashed


def test_semantic_field_changes_the_hash_and_a_non_semantic_one_does_not(toy_plugin):
    base = spec_hash(parse_spec(TOY))
    wider = json.loads(json.dumps(TOY))
    wider["backbone"]["schedule"]["steps_hint"] = 4
    assert spec_hash(parse_spec(wider)) != base
    moved = json.loads(json.dumps(TOY))
    moved["backbone"]["device"] = "cuda:1"
    assert spec_hash(parse_spec(moved)) == base


def test_schema_includes_runtime_registered_kinds(toy_plugin):
    schema = json.dumps(json_schema())
    assert "ToyBackboneParams" in schema and '"toy_even"' in schema


def test_removed_kind_no_longer_validates(toy_plugin):
    from dvlm.core.plugins import remove_plugin, add_plugin
    from tests.core.toy_plugin import ToyPlugin

    remove_plugin("toy")
    try:
        with pytest.raises(SpecError):
            parse_spec(TOY)
    finally:
        add_plugin(ToyPlugin(), name="toy")


def test_error_path_drops_the_union_tag_even_for_an_alias_and_keeps_missing_fields(toy_plugin):
    with pytest.raises(SpecError, match=r"<spec>: backbone.wdith: Extra inputs"):
        parse_spec({"spec": "model", "backbone": {"kind": "toy_alias", "wdith": 3}})
    with pytest.raises(SpecError, match=r"<spec>: backbone: Field required"):
        parse_spec({"spec": "model"})
