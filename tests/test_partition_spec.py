from __future__ import annotations

import pydantic
import pytest

from lakekit import InvalidInputError, PartitionField, PartitionSpec


def test_spec_from_strings_names_fields_after_their_transform() -> None:
    spec = PartitionSpec.of("country", "day(ts)", "bucket[16](user_id)", "truncate[4](sku)")
    assert [(f.source, f.transform, f.name) for f in spec.fields] == [
        ("country", "identity", "country"),
        ("ts", "day", "ts_day"),
        ("user_id", "bucket[16]", "user_id_bucket"),
        ("sku", "truncate[4]", "sku_truncate"),
    ]
    assert spec.is_partitioned
    assert not PartitionSpec().is_partitioned


def test_explicit_field_name_is_kept() -> None:
    field = PartitionField(source="ts", transform="day", name="dt")
    assert PartitionSpec.of(field).fields[0].name == "dt"


@pytest.mark.parametrize("transform", ["days", "bucket[0]", "bucket", "truncate[-1]", "weekly"])
def test_unknown_transforms_are_rejected(transform: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="partition transform"):
        PartitionField(source="ts", transform=transform)


def test_duplicate_field_names_are_rejected() -> None:
    with pytest.raises(InvalidInputError, match="unique"):
        PartitionSpec.of("a", PartitionField(source="b", name="a"))


def test_invalid_column_name_is_rejected() -> None:
    with pytest.raises(InvalidInputError, match="Bad Column"):
        PartitionSpec.of("Bad Column")
    with pytest.raises(pydantic.ValidationError):
        PartitionField(source="Bad Column")


def test_spec_of_reports_bad_transforms_as_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="partition transform"):
        PartitionSpec.of("weekly(ts)")


def test_spec_round_trips_through_json() -> None:
    spec = PartitionSpec.of("day(ts)", "country")
    assert PartitionSpec.model_validate_json(spec.model_dump_json()) == spec
