"""Label schema files: every shipped one loads and its `schema` is exactly what the annotation
service accepts (its own Pydantic model, unchanged by validation); broken files fail with an error
that names the file, the label and the rule."""
from __future__ import annotations

import pytest
import yaml

from annotation.schemas import SchemaDef
from curation.annotation_schema import SCHEMAS_DIR, SchemaError, available, load_schema, parse_schema


def test_the_shipped_schemas_load_and_convert_one_to_one_to_the_service_payload():
    assert available() == ["brain_lesions_v1", "brain_lesions_v2", "chest_findings_v1", "ct_lesions_v1",
                           "quality_review_v1"]
    for key in available():
        schema = load_schema(key)
        assert schema.key == key
        if schema.payload is None:
            assert schema.project_kind == "quality_review"
            continue
        assert SchemaDef.model_validate(schema.payload).model_dump(exclude_unset=True) == schema.payload
        assert set(schema.regions.values()) <= set(schema.yes_no_labels)
    chest = load_schema("chest_findings_v1")
    assert chest.yes_no_labels == ["opacity", "effusion", "nodule"]
    assert chest.regions == {"opacity_box": "opacity", "effusion_box": "effusion", "nodule_box": "nodule"}
    assert chest.labels["nodule_box"] == "box" and chest.selection["series_kinds"] == ["CR", "DX"]
    # brain_lesions v2 paints the lesion (a mask label) where v1 boxed it; v1 stays as it was
    brain = load_schema("brain_lesions_v2")
    assert brain.labels == {"hyperintensity": "boolean", "hyperintensity_mask": "mask"}
    assert brain.regions == {"hyperintensity_mask": "hyperintensity"}
    assert load_schema("brain_lesions_v1").labels["hyperintensity_box"] == "box"


def _chest() -> dict:
    return yaml.safe_load((SCHEMAS_DIR / "chest_findings_v1.yaml").read_text())


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["schema"]["labels"][0].update(kind="yesno"), "kind 'yesno' is not one of"),
    (lambda d: d["schema"]["labels"][1].update(id="Opacity Box"), "id 'Opacity Box' must be lower-case"),
    (lambda d: d["schema"]["labels"][2].update(color="blue"), "labels[2] (effusion): color 'blue'"),
    (lambda d: d["schema"]["labels"][3].update(shape="box"), "unknown key(s) ['shape']"),
    (lambda d: d["schema"]["labels"].append(dict(d["schema"]["labels"][0])), "'opacity' is given twice"),
    (lambda d: d["schema"].update(labels=[]), "list of 1 to 100 labels"),
    (lambda d: d["regions"].update(nodule_box="effusion_box"), "not a yes/no (boolean) label"),
    (lambda d: d["regions"].update(nodule="nodule"), "'nodule' is not a region (box, freehand or mask) label"),
    (lambda d: d["selection"].update(series_kinds=["XRAY"]), "['XRAY'] are not series kinds"),
    (lambda d: d.update(version="1"), "version must be a whole number"),
    (lambda d: d.pop("schema"), "a labels project needs a schema"),
    (lambda d: d.update(project_kind="review"), "project_kind 'review'"),
])
def test_a_broken_schema_names_the_place_and_the_rule(edit, message):
    data = _chest()
    edit(data)
    with pytest.raises(SchemaError, match="chest_findings_v1.yaml") as caught:
        parse_schema(data, "include/annotation/schemas/chest_findings_v1.yaml")
    assert message in str(caught.value)
    if "labels project needs" not in message and "project_kind" not in message and "version" not in message \
            and "regions" not in str(caught.value) and "selection" not in str(caught.value):
        # what the loader refuses in `schema`, the service refuses too
        with pytest.raises(ValueError):
            SchemaDef.model_validate(data["schema"])


def test_the_file_name_must_be_the_schema_key_and_unknown_keys_are_listed(tmp_path):
    data = _chest()
    (tmp_path / "chest_findings_v2.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(SchemaError, match="must be named chest_findings_v1.yaml"):
        load_schema(tmp_path / "chest_findings_v2.yaml")
    with pytest.raises(SchemaError, match="known: .*chest_findings_v1"):
        load_schema("chest_findings_v9")
    (tmp_path / "bad_v1.yaml").write_text("name: [unclosed")
    with pytest.raises(SchemaError, match="not valid YAML"):
        load_schema("bad_v1", tmp_path)
