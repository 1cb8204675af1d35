"""trl config fields read from source: the right names and types, without importing trl."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from engine.experiments import trainargs
from engine.experiments.trainargs import FieldType, check_value, config_fields, field_type


def test_fields_of_both_configs() -> None:
    sft, grpo = config_fields("sft"), config_fields("grpo")
    shared = ("learning_rate", "per_device_train_batch_size", "num_train_epochs", "max_steps", "output_dir")
    for name in shared:
        assert name in sft and name in grpo
    assert "max_length" in sft and "packing" in sft
    assert "num_generations" in grpo and "beta" in grpo and "max_completion_length" in grpo
    assert "num_generations" not in sft


def test_field_types_come_from_annotations() -> None:
    sft, grpo = config_fields("sft"), config_fields("grpo")
    assert sft["learning_rate"].kinds == {"float"}
    assert sft["per_device_train_batch_size"].kinds == {"int"}
    assert sft["max_length"].kinds == {"int", "none"}
    assert grpo["num_generations"].kinds == {"int", "none"}
    assert grpo["beta"].kinds == {"float"}
    assert sft["bf16"].kinds == {"bool", "none"}  # trl's _BaseConfig overrides TrainingArguments here


def test_reading_fields_does_not_import_trl() -> None:
    """Checked in a fresh interpreter: other tests in this session may import torch."""
    code = (
        "import sys; from engine.experiments.trainargs import config_fields; config_fields('sft'); config_fields('grpo');"
        "print(sorted(m for m in ('trl', 'transformers', 'torch') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_result_is_a_copy() -> None:
    config_fields("sft").clear()
    assert "learning_rate" in config_fields("sft")


def test_unknown_method() -> None:
    with pytest.raises(ValueError, match="unknown training method"):
        config_fields("dpo")


def test_missing_trl_is_a_clear_runtime_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trainargs, "find_spec", lambda name: None)
    trainargs.package_dir.cache_clear()
    trainargs._config_fields.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="trl is not installed"):
            config_fields("sft")
    finally:
        trainargs.package_dir.cache_clear()
        trainargs._config_fields.cache_clear()


@pytest.mark.parametrize(
    ("annotation", "good", "bad", "expected"),
    [
        ("int", [0, -3], [1.5, True, "1", None], "an integer"),
        ("float", [1, 0.5, -2], [True, "0.1", None], "a number"),
        ("bool", [True, False], [0, 1, "true"], "true or false"),
        ("str", ["x", ""], [1, None, ["x"]], "a string"),
        ("int | None", [3, None], [2.5, False], "an integer or null"),
        ("Optional[float]", [1, 2.0, None], ["x"], "a number or null"),
        ("Union[str, list[str]]", ["a", ["a", "b"], []], [["a", 1], 3], "a string or a list (each a string)"),
        ("dict | str | None", [{"a": 1}, "json", None], [1, ["a"]], "a string, a mapping or null"),
        ("dict[str, Any]", [{}], [[], "x"], "a mapping"),
        ("Literal['a', 'b']", ["a", "b"], ["c", 1], "'a' or 'b'"),
        ("str | None | Literal[False]", ["x", None, False], [True, 0], "a string, false or null"),
        ("'int | None'", [1, None], ["x"], "an integer or null"),
        ("IntervalStrategy | str", ["steps", 1, None], [], ""),
        ("ParallelismConfig | None", [None, {"a": 1}, 3], [], ""),
        ("not valid python (", [1, "x"], [], ""),
    ],
)
def test_check_value(annotation: str, good: list[object], bad: list[object], expected: str) -> None:
    ftype = field_type(annotation)
    for value in good:
        assert check_value(ftype, value) is None, (annotation, value)
    for value in bad:
        assert check_value(ftype, value) == expected, (annotation, value)


def test_default_field_type_accepts_anything() -> None:
    assert check_value(FieldType(), object()) is None


@pytest.mark.slow
def test_matches_the_installed_trl_dataclasses() -> None:
    """The parsed fields are exactly the real ones, and every real default fits its parsed type."""
    trl = pytest.importorskip("trl")
    for method, cls in (("sft", trl.SFTConfig), ("grpo", trl.GRPOConfig)):
        ours = config_fields(method)
        real = dataclasses.fields(cls)
        assert {f.name for f in real} == set(ours), method
        for f in real:
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if default is not dataclasses.MISSING:
                assert check_value(ours[f.name], default) is None, (method, f.name, default)
