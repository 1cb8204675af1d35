"""Experiment files: the example loads, defaults are filled, and each kind of mistake is
reported at the right file, line and key with a useful suggestion."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.experiments.spec import (
    Experiment,
    SpecError,
    SpecErrors,
    check_file,
    load_experiment,
    load_experiment_text,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "experiments" / "tiny-lab.yaml"
BASE = "name: x\nbase:\n  model: tiny-lab\n"  # lines 1-3 of most cases below


def sft(args: str = "        learning_rate: 1.0e-4\n", variant: str = "s") -> str:
    """BASE plus one SFT variant; the first line of `args` is line 10."""
    head = f"models:\n  {variant}:\n    train:\n      method: sft\n      data: lab/math-train\n      args:\n"
    return BASE + head + args


def write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def errors_in(tmp_path: Path, text: str) -> list[SpecError]:
    return check_file(write(tmp_path, text))


# ── the example and defaults ─────────────────────────────────────────────────────────────


def test_example_file_loads() -> None:
    exp = load_experiment(EXAMPLE)
    assert isinstance(exp, Experiment)
    assert exp.name == "tiny-lab"
    assert exp.path == EXAMPLE
    assert exp.text == EXAMPLE.read_text(encoding="utf-8")
    assert set(exp.data["models"]) == {"sft", "rl"}
    assert exp.data["models"]["rl"]["train"]["args"]["num_generations"] == 8
    assert exp.data["models"]["sft"]["train"]["args"]["learning_rate"] == 5.0e-4
    assert exp.data["ti"] == {"variant": "v2", "sigma": "pooled"}


def test_example_defaults_are_filled() -> None:
    data = load_experiment(EXAMPLE).data
    assert data["eval"]["generation"] == {  # unset sampling keys: each benchmark's own default
        "max_new_tokens": 64, "temperature": 0.0, "top_p": None, "n": None, "enable_thinking": False, "seed": 0,
        "stop": None,
    }
    assert (data["eval"]["backend"], data["eval"]["backend_options"]) == ("auto", {})
    pca = {"items": 50, "max_tokens": 64, "pooling": "paper", "layers": "all"}
    assert data["analysis"]["pca_shift"] == pca
    assert data["models"]["rl"]["train"]["reward"] == "math"
    assert data["models"]["sft"]["train"]["reward"] is None
    assert data["models"]["sft"]["from"] == "base"


def test_minimal_file_gets_every_default() -> None:
    data = load_experiment_text(BASE).data
    assert data["description"] == ""
    assert data["base"] == {"model": "tiny-lab", "revision": None, "seed": 0, "rebuild": False, "build": None}
    assert data["models"] == {}
    assert (data["eval"]["suite"], data["eval"]["benchmarks"], data["eval"]["limit"]) == ("lab", None, None)
    assert data["eval"]["generation"]["temperature"] is None
    assert data["analysis"] == {
        "pca_shift": {"items": 100, "max_tokens": 128, "pooling": "paper", "layers": "all"},
        "token_shift": {"items": 100},
    }
    assert data["ti"] == {"variant": "v2", "sigma": "pooled"}


def test_variant_defaults_and_partial_sections() -> None:
    text = sft("        num_train_epochs: 1\n") + (
        "      lora: {r: 8}\n"
        "analysis:\n  token_shift:\n"
        "eval:\n  benchmarks: [{name: math500, group: math}]\n  generation: {temperature: 1}\n"
    )
    data = load_experiment_text(text).data
    train = data["models"]["s"]["train"]
    assert train["lora"] == {"r": 8, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"}
    assert train["retries"] == 0
    assert data["analysis"] == {"token_shift": {"items": 100}}
    assert data["eval"]["suite"] is None
    assert data["eval"]["benchmarks"] == [{"name": "math500", "group": "math", "data": None, "limit": None,
                                           "scorer": None}]
    assert data["eval"]["generation"]["temperature"] == 1.0
    assert isinstance(data["eval"]["generation"]["temperature"], float)


def test_scientific_notation_without_dot_is_a_number() -> None:
    """PyYAML reads `1e-5` as a string; experiment files mean a number."""
    data = load_experiment_text(sft("        learning_rate: 1e-5\n")).data
    assert data["models"]["s"]["train"]["args"]["learning_rate"] == 1e-5


def test_hf_ids_local_paths_and_from_chains_are_valid(tmp_path: Path) -> None:
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "train.jsonl").write_text("{}\n")
    text = (
        "name: paths\nbase:\n  model: ./ckpt\nmodels:\n"
        "  released: {model: Org/Some-Model_1.5}\n"
        "  s: {train: {method: sft, data: ./train.jsonl}}\n"
        "  r: {from: s, train: {method: grpo, data: org/data}}\n"
    )
    exp = load_experiment(write(tmp_path, text))
    assert exp.data["models"]["r"]["from"] == "s"
    assert exp.local_path("./ckpt") == (tmp_path / "ckpt").resolve()
    assert exp.local_path("Org/Some-Model_1.5") is None


# ── malformed files: one error each, at the exact place ──────────────────────────────────

MALFORMED = [
    # id, text, line, key path, fragment of the message, suggestion
    ("not-yaml", "name: x\nbase: {model: [}\n", 2, "", "not valid YAML: expected the node content", None),
    ("empty-file", "", 1, "", "empty experiment file", None),
    ("comments-only", "# nothing here\n\n# yet\n", 1, "", "empty experiment file", None),
    ("top-level-list", "- name: x\n- base: y\n", 1, "",
     "expected a mapping at the top level, got a list", None),
    ("unknown-top-key", BASE + "colour: red\n", 4, "colour", "unknown key 'colour' (valid keys: name,", None),
    ("typo-of-key", BASE + "modles: {}\n", 4, "modles", "unknown key 'modles'", "models"),
    ("wrong-type", BASE + "eval:\n  generation:\n    temperature: hot\n", 6,
     "eval.generation.temperature", "expected a number, got 'hot'", None),
    ("int-for-string", BASE + "description: 3\n", 4, "description", "expected a string, got 3", None),
    ("bool-for-int", BASE + "eval:\n  generation: {max_new_tokens: true}\n", 5,
     "eval.generation.max_new_tokens", "expected an integer, got true", None),
    ("missing-base", "name: x\ndescription: no base\n", 1, "base", "missing required key 'base'", None),
    ("missing-base-model", "name: x\nbase:\n  seed: 1\n", 2, "base.model",
     "missing required key 'model'", None),
    ("unknown-model", "name: x\nbase:\n  model: tiny-lb\n", 3, "base.model",
     "unknown model 'tiny-lb': expected a built-in (tiny-lab), an HF id (org/name) or a local path",
     "tiny-lab"),
    ("duplicate-variant",
     BASE + "models:\n  a: {model: org/a}\n  b: {model: org/b}\n  a: {model: org/c}\n",
     7, "models.a", "duplicate key 'a' (first at line 5)", None),
    ("from-cycle",
     BASE + "models:\n  a:\n    from: b\n    model: org/a\n  b:\n    from: a\n    model: org/b\n",
     6, "models.a.from", "dependency cycle: a -> b -> a", None),
    ("unknown-from", BASE + "models:\n  a:\n    from: bse\n    model: org/a\n", 6, "models.a.from",
     "unknown variant 'bse'", "base"),
    ("unknown-method", sft().replace("method: sft", "method: sfft"), 7, "models.s.train.method",
     "unknown method 'sfft': expected one of sft, grpo", "sft"),
    ("negative-lr", sft("        learning_rate: -1.0e-4\n"), 10, "models.s.train.args.learning_rate",
     "must be > 0, got -0.0001", None),
    ("trl-arg-typo", sft("        learning_rat: 1.0e-4\n"), 10, "models.s.train.args.learning_rat",
     "unknown training argument 'learning_rat' for trl SFTConfig", "learning_rate"),
    ("trl-arg-type", sft("        num_train_epochs: two\n"), 10, "models.s.train.args.num_train_epochs",
     "expected a number, got 'two'", None),
    ("trl-arg-bool-for-int", sft("        per_device_train_batch_size: true\n"), 10,
     "models.s.train.args.per_device_train_batch_size", "expected an integer, got true", None),
    ("output-dir-refused", sft("        output_dir: /tmp/out\n"), 10, "models.s.train.args.output_dir",
     "'output_dir' is set by tix", None),
    ("grpo-num-generations", sft("        num_generations: 1\n").replace("method: sft", "method: grpo"), 10,
     "models.s.train.args.num_generations", "must be >= 2", None),
    ("sft-only-arg-in-grpo", sft("        packing: true\n").replace("method: sft", "method: grpo"), 10,
     "models.s.train.args.packing", "unknown training argument 'packing' for trl GRPOConfig", None),
    ("reward-on-sft", sft("        learning_rate: 1.0e-4\n      reward: math\n"), 11, "models.s.train.reward",
     "reward: only applies to method grpo", None),
    ("model-and-train",
     BASE + "models:\n  a:\n    model: org/a\n    train: {method: sft, data: lab/math-train}\n",
     5, "models.a", "variant needs either model: or train:, not both", None),
    ("neither-model-nor-train", BASE + "models:\n  a:\n    revision: main\n", 5, "models.a",
     "variant needs either model: or train:", None),
    ("variant-named-base", BASE + "models:\n  base: {model: org/a}\n", 5, "models.base", "reserved", None),
    ("unknown-suite", BASE + "eval:\n  suite: labb\n", 5, "eval.suite", "unknown suite 'labb'", "lab"),
    ("duplicate-benchmark",
     BASE + "eval:\n  benchmarks:\n    - {name: aime24, group: math}\n    - {name: aime24, group: non}\n",
     7, "eval.benchmarks[1].name", "duplicate benchmark 'aime24' (first at line 6)", None),
    ("unknown-benchmark", BASE + "eval:\n  benchmarks:\n    - {name: math5000}\n", 6, "eval.benchmarks[0].name",
     "unknown benchmark 'math5000'", "math500"),
    ("missing-benchmark-data", BASE + "eval:\n  benchmarks:\n    - {name: math500, data: ./nope.jsonl}\n", 6,
     "eval.benchmarks[0].data", "data file not found", None),
    ("stop-not-list", BASE + "eval:\n  generation: {stop: 3}\n", 5, "eval.generation.stop",
     "expected a list of non-empty strings", None),
    ("unknown-backend", BASE + "eval:\n  backend: vlm\n", 5, "eval.backend", "unknown backend 'vlm'", "vllm"),
    ("top-p-range", BASE + "eval:\n  generation:\n    top_p: 1.5\n", 6, "eval.generation.top_p",
     "must be in (0, 1], got 1.5", None),
    ("sigma-typo", BASE + "ti:\n  sigma: pooledd\n", 5, "ti.sigma",
     "expected 'pooled', 'per-model'", "pooled"),
    ("bad-name", "name: -x\nbase: {model: tiny-lab}\n", 1, "name", "invalid name '-x'", None),
]


@pytest.mark.parametrize(
    ("text", "line", "path", "fragment", "suggestion"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
def test_malformed_file_reports_one_precise_error(
    tmp_path: Path, text: str, line: int, path: str, fragment: str, suggestion: str | None
) -> None:
    errors = errors_in(tmp_path, text)
    assert len(errors) == 1, "\n".join(map(str, errors))
    error = errors[0]
    file = str(tmp_path / "exp.yaml")
    assert (error.file, error.line, error.path, error.suggestion) == (file, line, path, suggestion)
    assert fragment in error.message
    prefix = f"{file}:{line}: " + (f"{path}: " if path else "")
    assert str(error).startswith(prefix)
    if suggestion:
        assert str(error).endswith(f" (did you mean '{suggestion}'?)")


def test_local_model_path_not_found(tmp_path: Path) -> None:
    errors = errors_in(tmp_path, "name: x\nbase:\n  model: ./checkpoints/missing\n")
    assert [(e.line, e.path, e.message) for e in errors] == [
        (3, "base.model", f"model path not found: {tmp_path / 'checkpoints' / 'missing'}")
    ]


def test_data_path_not_found_and_unknown_dataset(tmp_path: Path) -> None:
    text = BASE + (
        "models:\n"
        "  a: {train: {method: sft, data: ../nowhere.jsonl}}\n"
        "  b: {train: {method: sft, data: mathh}}\n"
    )
    first, second = errors_in(tmp_path, text)
    assert (first.line, first.path) == (5, "models.a.train.data")
    assert first.message == f"data path not found: {tmp_path.parent / 'nowhere.jsonl'}"
    assert (second.line, second.path) == (6, "models.b.train.data")
    assert second.message.startswith("unknown dataset 'mathh': expected a built-in (lab/math-train)")


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert [str(e) for e in check_file(missing)] == [f"{missing}:1: file not found"]
    with pytest.raises(SpecErrors) as caught:
        load_experiment(missing)
    assert str(caught.value) == f"{missing}:1: file not found"


def test_directory_and_binary_files(tmp_path: Path) -> None:
    assert [e.message for e in check_file(tmp_path)] == ["is a directory, expected an experiment YAML file"]
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"name: x\nbase: \xff\xfe\n")
    assert [(e.line, e.message) for e in check_file(binary)] == [(2, "not UTF-8 text (byte 0xff)")]


def test_odd_yaml_is_reported_not_raised() -> None:
    cases = {
        "name: x\n---\nname: y\n": "expected a single document",
        "name: \x00\n": "character #x0000 is not allowed",
        "a: &a [*a, *a]\n" + "b: &b [*a, *a]\n": "",  # recursive alias: reported, whatever the message
        "just a string\n": "expected a mapping at the top level, got 'just a string'",
        BASE + "1: one\n": "keys must be strings, got '1'",
        BASE + "x: &x {a: 1}\ny: {<<: *x}\n": "merge keys",
        BASE + "description: !custom tag\n": "cannot read value",
        _alias_bomb(): "too many values",
    }
    for text, fragment in cases.items():
        with pytest.raises(SpecErrors) as caught:
            load_experiment_text(text, "odd.yaml")
        assert fragment in str(caught.value)


def _alias_bomb() -> str:
    """A few lines that expand to a million values ("billion laughs")."""
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 6)]
    return "\n".join(lines) + "\n"


def test_all_errors_are_reported_sorted_by_line() -> None:
    text = sft("        learning_rat: 1\n        output_dir: x\n").replace("tiny-lab", "tiny-lb")
    text += "colour: red\n"
    with pytest.raises(SpecErrors) as caught:
        load_experiment_text(text, "many.yaml")
    assert [(e.line, e.path) for e in caught.value.errors] == [
        (3, "base.model"),
        (10, "models.s.train.args.learning_rat"),
        (11, "models.s.train.args.output_dir"),
        (12, "colour"),
    ]
    assert str(caught.value) == "\n".join(str(e) for e in caught.value.errors)


def test_every_error_is_one_line(tmp_path: Path) -> None:
    texts = [case[1] for case in MALFORMED] + ["a: 'multi\n  line\n  value'\nb: [1,\n"]
    errors = [e for text in texts for e in errors_in(tmp_path, text)]
    errors.append(SpecError("f.yaml", 1, "a", "two\nlines", "x\ny"))
    assert errors
    for error in errors:
        assert "\n" not in str(error) and "\r" not in str(error)


def test_spec_does_not_import_heavy_libraries() -> None:
    """The CLI validates files on every call; importing trl/torch would cost seconds."""
    code = (
        "import sys, engine.experiments.spec as s; s.load_experiment(sys.argv[1]);"
        "print(sorted(m for m in ('trl', 'transformers', 'torch') if m in sys.modules))"
    )
    command = [sys.executable, "-c", code, str(EXAMPLE)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_example_in_the_docs_block_is_valid() -> None:
    """The shape shown in DESIGN.md section 4 validates (with the lab's names)."""
    text = textwrap.dedent("""\
        name: tiny-lab
        base: {model: tiny-lab}
        models:
          sft: {train: {method: sft,  data: lab/math-train, args: {learning_rate: 5.0e-4}}}
          rl:  {train: {method: grpo, data: lab/math-train, reward: math, args: {num_generations: 4}}}
          released: {model: ReasoningTransferability/UniReason-Qwen3-14B-RL}
        eval:
          suite: lab
          generation: {max_new_tokens: 64, temperature: 0.0, enable_thinking: false}
        analysis: {pca_shift: {items: 100, max_tokens: 128}, token_shift: {items: 100}}
        ti: {variant: v2, sigma: pooled}
        """)
    assert load_experiment_text(text).data["models"]["released"]["train"] is None


def error_lines(text: str, filename: str) -> list[str]:
    """Every error `tix check` would print for `text`, in order."""
    with pytest.raises(SpecErrors) as caught:
        load_experiment_text(text, filename)
    return [str(e) for e in caught.value.errors]


def test_multi_gpu_settings_are_checked() -> None:
    text = ("name: x\nbase: {model: org/base}\nmodels:\n"
            "  s: {train: {method: sft, data: lab/math-train, gpus: 2, lora: {r: 8}}}\n"
            "  d: {train: {method: sft, data: lab/math-train, gpus: 2, distributed: zero4}}\n"
            "  o: {train: {method: sft, data: lab/math-train, distributed: fsdp}}\n"
            "eval: {suite: paper, backend_options: {tensor_parallel_size: two}}\n")
    assert error_lines(text, "x.yaml") == [
        "x.yaml:4: models.s.train.lora: lora: not supported with gpus > 1 yet (the merged model is saved "
        "from one process); train LoRA on one GPU",
        "x.yaml:5: models.d.train.distributed: expected one of zero3, fsdp, ddp or a path to an accelerate "
        "config (.yaml), got 'zero4' (did you mean 'zero3'?)",
        "x.yaml:6: models.o.train.distributed: distributed: needs gpus: 2 or more",
        "x.yaml:7: eval.backend_options: tensor_parallel_size: expected an integer, got 'two'"]


def test_teacher_backend_and_cpu_kv_cache_are_checked() -> None:
    text = ("name: x\nbase: {model: org/base}\nmodels:\n"
            "  s: {train: {method: sft, data: lab/math-train, teacher: {model: self, backend: vlm}}}\n"
            "eval: {suite: lab, backend: vllm, backend_options: {cpu_kv_cache_gib: 0.5}}\n")
    assert error_lines(text, "x.yaml") == [
        "x.yaml:4: models.s.train.teacher.backend: unknown backend 'vlm': expected one of auto, hf, vllm "
        "(did you mean 'vllm'?)",
        "x.yaml:5: eval.backend_options: cpu_kv_cache_gib: expected an integer, got 0.5"]


def test_released_models_name_their_base_and_method() -> None:
    good = ("name: zoo\nbase: {model: org/a}\nmodels:\n  b: {model: org/b, from: none}\n"
            "  c: {model: org/c, from: b, method: rl}\n")
    exp = load_experiment_text(good, "zoo.yaml")
    assert (exp.data["models"]["c"]["from"], exp.data["models"]["c"]["method"]) == ("b", "rl")
    bad = ("name: zoo\nbase: {model: org/a}\nmodels:\n"
           "  none: {model: org/n}\n"
           "  t: {from: none, method: sft, train: {method: sft, data: lab/math-train}}\n"
           "  c: {model: org/c, from: bb}\n")
    assert error_lines(bad, "zoo.yaml") == [
        "zoo.yaml:4: models.none: 'none' is reserved (the base model, no base); choose another variant name",
        "zoo.yaml:5: models.t.method: method: labels released models; a trained one has train.method",
        "zoo.yaml:5: models.t.from: from: none is for released models; a trained one needs a source",
        "zoo.yaml:6: models.c.from: unknown variant 'bb'"]


# ── per-experiment slurm: overrides ─────────────────────────────────────────────────────────


def test_slurm_overrides_keep_only_the_keys_given() -> None:
    text = sft("") + "      slurm: {partition: a100, exclusive: true, cpus_per_gpu: 8}\n" + (
        "slurm: {partition: big, time: 60, setup: [module load cuda]}\n")
    data = load_experiment_text(text).data
    assert data["slurm"] == {"partition": "big", "time": "60", "setup": ["module load cuda"]}
    assert data["models"]["s"]["train"]["slurm"] == {"partition": "a100", "cpus_per_gpu": 8, "exclusive": True}
    plain = load_experiment_text(sft("")).data
    assert plain["slurm"] is None and plain["models"]["s"]["train"]["slurm"] is None


def test_slurm_mistakes_are_one_line_each_at_their_key(tmp_path: Path) -> None:
    text = sft("") + "      slurm: {gpus_per_node: 2, setup: module load cuda, signal_grace: -1}\n" + (
        "slurm:\n  partion: gpu\n  cpus_per_gpu: many\n  exclusive: 1\n")
    shown = [str(e).removeprefix(f"{tmp_path / 'exp.yaml'}:") for e in errors_in(tmp_path, text)]
    assert shown == [
        "10: models.s.train.slurm.gpus_per_node: 'gpus_per_node' is a daemon setting (TIX_HOME/config.yaml), "
        "not one per experiment",
        "10: models.s.train.slurm.setup: expected a list of non-empty strings, got 'module load cuda'",
        "10: models.s.train.slurm.signal_grace: must be >= 0, got -1",
        "12: slurm.partion: unknown key 'partion' (did you mean 'partition'?)",
        "13: slurm.cpus_per_gpu: expected an integer, got 'many'",
        "14: slurm.exclusive: expected true or false, got 1",
    ]
    assert [str(e).split(": ", 2)[1:] for e in errors_in(tmp_path, BASE + "slurm: [gpu]\n")] == [
        ["slurm", "expected a mapping, got a list"]]
