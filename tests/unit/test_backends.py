"""The HF backend on a real tiny model: rendering, batching, sampling, stop strings, finish
reasons, token counts, log-likelihoods; and the generation cache."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from engine.evaluation.backends import Generation, ModelRef, SamplingParams, load_backend
from engine.evaluation.backends.cache import GenerationCache, cache_key, model_identity

pytestmark = pytest.mark.slow
QUESTIONS = ["What is 12 + 7?", "Which number is larger, 5 or 9?", "Repeat the word zove.",
             "What comes next in the sequence 3, 5, 7, 9?"]


@pytest.fixture(scope="module")
def backend(tiny_model: Path):
    return load_backend(ModelRef(str(tiny_model), options={"batch_size": 3}), "hf")


def test_render_uses_the_chat_template_and_enable_thinking(backend) -> None:
    off = backend.render("Hi?", chat=True, enable_thinking=False)
    on = backend.render("Hi?", chat=True, enable_thinking=True)
    assert off.startswith("<|im_start|>user\nHi?<|im_end|>") and off.endswith("<think>\n\n</think>\n\n")
    assert on.endswith("<|im_start|>assistant\n")
    assert backend.render("Hi?", chat=False, enable_thinking=False) == "Hi?"


def test_greedy_batched_equals_one_by_one(backend) -> None:
    prompts = [backend.render(q, chat=True, enable_thinking=False) for q in QUESTIONS]
    params = SamplingParams(max_new_tokens=12)
    batched = backend.generate(prompts, params)
    single = [backend.generate([p], params)[0] for p in prompts]
    assert [g[0].text for g in batched] == [g[0].text for g in single]
    for gens in batched:
        assert len(gens) == 1 and gens[0].finish_reason in ("stop", "length") and gens[0].prompt_tokens > 5


RAW = "Question: Repeat the word zove.\nAnswer:"  # a raw prompt the tiny model continues at length


def test_length_limit_sets_finish_reason_and_counts_tokens(backend) -> None:
    prompt = RAW
    gen = backend.generate([prompt], SamplingParams(max_new_tokens=1))[0][0]
    assert gen.finish_reason == "length" and gen.tokens == 1


def test_n_samples_with_temperature_are_seeded(backend) -> None:
    prompt = backend.render(QUESTIONS[0], chat=True, enable_thinking=False)
    params = SamplingParams(max_new_tokens=8, temperature=1.5, n=4, seed=11)
    first = backend.generate([prompt], params)[0]
    assert len(first) == 4
    assert [g.text for g in backend.generate([prompt], params)[0]] == [g.text for g in first]


def test_stop_strings_cut_the_text(backend) -> None:
    prompt = RAW
    free = backend.generate([prompt], SamplingParams(max_new_tokens=20))[0][0]
    assert free.text, "the tiny model should say something"
    stop = free.text.strip()[:1]
    cut = backend.generate([prompt], SamplingParams(max_new_tokens=20, stop=(stop,)))[0][0]
    assert stop not in cut.text and cut.finish_reason == "stop"


def test_loglikelihood_matches_a_manual_forward_pass(backend) -> None:
    import torch

    ctx, cont = "Question: What is 2 + 2?\nAnswer:", " 4"
    got = backend.loglikelihood([(ctx, cont), (ctx, " 9"), ("Question: hi\nAnswer:", " zove")])
    tok, model = backend.tokenizer, backend.model
    ids = tok(ctx + cont, add_special_tokens=False, return_tensors="pt")["input_ids"]
    n_ctx = len(tok(ctx, add_special_tokens=False)["input_ids"])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].float(), dim=-1)
    manual = sum(float(logp[i - 1, ids[0, i]]) for i in range(n_ctx, ids.shape[1]))
    assert math.isclose(got[0], manual, rel_tol=1e-4, abs_tol=1e-4)
    assert all(v < 0 for v in got) and got[0] != got[1]


def test_generation_cache_round_trip_and_identity(tmp_path: Path, tiny_model: Path) -> None:
    cache = GenerationCache(tmp_path / "g.sqlite")
    ident = model_identity(str(tiny_model))
    assert ident == model_identity(str(tiny_model)) and ident.startswith("local:")
    assert model_identity("org/model", "abc") == "hub:org/model@abc"
    params = SamplingParams(max_new_tokens=5)
    key = cache_key(ident, "prompt", params, "hf:float32")
    assert key != cache_key(ident, "prompt", SamplingParams(max_new_tokens=6), "hf:float32")
    assert key != cache_key(ident, "prompt", SamplingParams(max_new_tokens=5, seed=1), "hf:float32")
    assert key != cache_key(ident, "prompt", params, "vllm:float32")  # backends never share entries
    gens = [Generation("a", 1, "stop", 3)]
    cache.put_many({key: gens})
    again = GenerationCache(tmp_path / "g.sqlite")  # another process would see the same
    assert again.get_many([key, "missing"]) == {key: gens}


def test_unknown_backend_and_missing_vllm_are_clear(tiny_model: Path) -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        load_backend(ModelRef(str(tiny_model)), "tgi")
    with pytest.raises(ValueError, match="vllm"):
        load_backend(ModelRef(str(tiny_model)), "vllm")


def test_data_parallel_engines_split_the_runs_gpus_into_tensor_parallel_groups() -> None:
    """Each vLLM engine of a data-parallel evaluation gets its own GPUs out of the run's set
    (the module imports vllm only inside the engines, so this runs on any box)."""
    from engine.evaluation.backends.vllm import device_groups

    assert device_groups("4,5,6,7", 4, 1) == ["4", "5", "6", "7"]
    assert device_groups("0,1,2,3,4,5,6,7", 4, 2) == ["0,1", "2,3", "4,5", "6,7"]
    assert device_groups("", 2, 2) == ["0,1", "2,3"]
    with pytest.raises(RuntimeError, match="needs 8 GPUs; the run has 4"):
        device_groups("0,1,2,3", 4, 2)
