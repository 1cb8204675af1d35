"""tix's vLLM backend against its HF backend on the same lab model, fp32, on vLLM's CPU build.

Each test names the promise it checks: greedy agreement, token counts under the shared rule,
log-likelihood choices, seeded sampling, stop strings, the context cap, data parallelism, and the
defects the first run on a real vLLM found (explicit `vllm` refused without CUDA, EOS counted by
vLLM only, a data-parallel pool that hung, a KV cache of 90 % of RAM).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from engine.evaluation.backends import Generation, ModelRef, SamplingParams, load_backend
from engine.evaluation.benchmarks import SUITES, get_benchmark, load_items, prompt_text

PER_BENCHMARK = 20
"""Items per lab benchmark in the agreement set: 6 x 20 = 120 prompts."""
GIB = 1 << 30


@pytest.fixture(scope="module")
def vllm(lab_base: Path) -> Any:
    backend = load_backend(ModelRef(str(lab_base), options={"max_model_len": 512}), "vllm")
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def hf(lab_base: Path) -> Any:
    return load_backend(ModelRef(str(lab_base), options={"dtype": "float32"}), "hf")


@pytest.fixture(scope="module")
def lab_prompts(hf: Any) -> list[str]:
    """Chat-rendered questions of every lab benchmark, as the eval job renders them."""
    prompts = []
    for name in SUITES["lab"]:
        bench = get_benchmark(name)
        for item in load_items(bench, limit=PER_BENCHMARK):
            prompts.append(hf.render(prompt_text(bench, item), chat=bench.chat, enable_thinking=False))
    return prompts


def texts(gens: list[list[Generation]]) -> list[str]:
    return [g[0].text for g in gens]


def test_explicit_vllm_runs_without_cuda(vllm: Any) -> None:
    """`backend: vllm` needs a working vLLM, not CUDA (it used to refuse on every CPU box)."""
    import torch

    assert vllm.name == "vllm" and not torch.cuda.is_available()


def test_cpu_kv_cache_is_small_by_default(vllm: Any, lab_base: Path) -> None:
    """tix sizes the CPU KV cache from `cpu_kv_cache_gib` (1 GiB) instead of vLLM's 90 % of RAM."""
    assert os.environ["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert vllm.llm.llm_engine.vllm_config.cache_config.kv_cache_memory_bytes == 1 * GIB
    assert vllm.engine_args["dtype"] == "float32" and vllm.engine_args["enforce_eager"] is True


def test_greedy_text_agrees_with_hf_on_lab_prompts(vllm: Any, hf: Any, lab_prompts: list[str],
                                                   tmp_path_factory: pytest.TempPathFactory) -> None:
    """>= 95 % identical greedy completions; every difference is a numerical near-tie: the two
    top logits under HF at the first differing token are within 1e-3 of each other."""
    params = SamplingParams(max_new_tokens=20)
    ours, theirs = vllm.generate(lab_prompts, params), hf.generate(lab_prompts, params)
    differ = [i for i, (a, b) in enumerate(zip(texts(ours), texts(theirs), strict=True)) if a != b]
    report = {"prompts": len(lab_prompts), "identical": len(lab_prompts) - len(differ),
              "differences": [{"prompt": lab_prompts[i][-80:], "vllm": ours[i][0].text, "hf": theirs[i][0].text,
                               "hf_top2_gap": top2_gap(hf, lab_prompts[i], ours[i][0].text, theirs[i][0].text)}
                              for i in differ]}
    print("greedy agreement:", json.dumps(report, indent=1))
    assert len(lab_prompts) >= 100
    assert len(differ) <= 0.05 * len(lab_prompts), report
    assert all(d["hf_top2_gap"] < 1e-3 for d in report["differences"]), report


def top2_gap(hf: Any, prompt: str, a: str, b: str) -> float:
    """HF's gap between its two likeliest tokens where the completions `a` and `b` part."""
    import torch

    tok = hf.tokenizer
    ids_a, ids_b = tok(a, add_special_tokens=False)["input_ids"], tok(b, add_special_tokens=False)["input_ids"]
    n = next((k for k, (x, y) in enumerate(zip(ids_a, ids_b, strict=False)) if x != y), min(len(ids_a), len(ids_b)))
    context = tok(prompt, add_special_tokens=False)["input_ids"] + ids_b[:n]
    with torch.inference_mode():
        logits = hf.model(input_ids=torch.tensor([context])).logits[0, -1].float()
    top = torch.topk(logits, 2).values
    return float(top[0] - top[1])


def test_token_counts_and_finish_reasons_follow_one_rule(vllm: Any, hf: Any, lab_prompts: list[str]) -> None:
    """Same text -> same token count and finish reason: EOS is not counted by either backend."""
    params = SamplingParams(max_new_tokens=20)
    pairs = [(a[0], b[0]) for a, b in zip(vllm.generate(lab_prompts, params), hf.generate(lab_prompts, params),
                                            strict=True) if a[0].text == b[0].text]
    assert sum(a.finish_reason == "stop" for a, _ in pairs) >= 10  # EOS-ended samples are in the set
    assert [(a.tokens, a.finish_reason) for a, _ in pairs] == [(b.tokens, b.finish_reason) for _, b in pairs]


def test_loglikelihood_choices_agree(vllm: Any, hf: Any) -> None:
    bench = get_benchmark("lab_syllogism_choice")
    items = load_items(bench, limit=20)
    pairs = [(prompt_text(bench, it), f" {choice}") for it in items for choice in it["choices"]]
    ours, theirs = vllm.loglikelihood(pairs), hf.loglikelihood(pairs)
    assert max(abs(a - b) for a, b in zip(ours, theirs, strict=True)) < 1e-3
    width = len(items[0]["choices"])
    pick = lambda lls: [max(range(width), key=lls[i:i + width].__getitem__) for i in range(0, len(lls), width)]  # noqa: E731
    assert pick(ours) == pick(theirs)


def test_sampling_with_n_and_a_seed_is_reproducible(vllm: Any, lab_prompts: list[str]) -> None:
    """n = 4 seeded samples of all 120 prompts: one batch large enough that vLLM would split a
    prefill (which failed seeded sampling on the CPU build until tix scheduled prefills whole)."""
    params = SamplingParams(max_new_tokens=12, temperature=1.0, n=4, seed=7)
    first, again = vllm.generate(lab_prompts, params), vllm.generate(lab_prompts, params)
    assert all(len(g) == 4 for g in first)
    assert [[x.text for x in g] for g in first] == [[x.text for x in g] for g in again]
    assert any(len({x.text for x in g}) > 1 for g in first)  # the four samples of a prompt differ
    other = vllm.generate(lab_prompts, SamplingParams(max_new_tokens=12, temperature=1.0, n=4, seed=8))
    assert [[x.text for x in g] for g in other] != [[x.text for x in g] for g in first]


def test_stop_strings_cut_like_hf(vllm: Any, hf: Any, lab_prompts: list[str]) -> None:
    plain = texts(hf.generate(lab_prompts, SamplingParams(max_new_tokens=20)))
    stop = most_common_char(plain)
    params = SamplingParams(max_new_tokens=20, stop=(stop,))
    ours, theirs = vllm.generate(lab_prompts, params), hf.generate(lab_prompts, params)
    cut = [i for i, t in enumerate(plain) if stop in t]
    assert len(cut) >= 10
    assert all(stop not in ours[i][0].text and ours[i][0].finish_reason == "stop" for i in cut)
    same = [i for i in cut if ours[i][0].text == theirs[i][0].text]
    assert len(same) >= 0.95 * len(cut)
    assert all(ours[i][0].tokens == theirs[i][0].tokens for i in same)


def most_common_char(texts_: list[str]) -> str:
    from collections import Counter

    counts = Counter(ch for t in texts_ for ch in set(t[1:]) if not ch.isspace())
    return counts.most_common(1)[0][0]


def test_context_cap_gives_the_room_left_and_ends_in_length(vllm: Any, hf: Any) -> None:
    """Prompts 1-6 tokens short of max_model_len (512) asked for 64 new tokens: vLLM would refuse
    them; tix gives each the room left, and the result equals HF's with max_new_tokens = that room
    (text, token count, finish reason). Several end in `length`, so the cap is what ended them."""
    bench = get_benchmark("lab_word_sequence_reversal")
    capped = []
    for room, item in zip(range(1, 7), load_items(bench, limit=6), strict=True):
        prompt = near_full_prompt(hf, prompt_text(bench, item), 512 - room)
        ours = vllm.generate([prompt], SamplingParams(max_new_tokens=64))[0][0]
        exact = hf.generate([prompt], SamplingParams(max_new_tokens=512 - len(hf.tokenizer(prompt)["input_ids"])))
        assert (ours.text, ours.tokens, ours.finish_reason) == (exact[0][0].text, exact[0][0].tokens,
                                                                exact[0][0].finish_reason)
        capped.append(ours.finish_reason == "length")
    assert sum(capped) >= 3, capped


def near_full_prompt(hf: Any, question: str, target: int) -> str:
    """The chat prompt of `question` behind filler words, `target` tokens long (or just under)."""
    filler = 0
    while len(hf.tokenizer(hf.render("x " * (filler + 1) + question, chat=True,
                                     enable_thinking=False))["input_ids"]) <= target:
        filler += 1
    return hf.render("x " * filler + question, chat=True, enable_thinking=False)


def test_data_parallel_two_engines_equal_one_in_order(lab_base: Path, vllm: Any, lab_prompts: list[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """data_parallel_size 2: two engine processes, results in input order and equal to one engine's.
    With vLLM's default multiprocessing each engine starts an engine-core process of its own, which
    a daemonic `multiprocessing.Pool` worker may not: the old pool restarted them forever."""
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "1")
    options = {"max_model_len": 512, "data_parallel_size": 2}
    pooled = load_backend(ModelRef(str(lab_base), options=options), "vllm")
    try:
        params = SamplingParams(max_new_tokens=20)
        assert texts(pooled.generate(lab_prompts[:40], params)) == texts(vllm.generate(lab_prompts[:40], params))
        pairs = [("Is a cat an animal?\nAnswer:", " Yes"), ("Is a cat an animal?\nAnswer:", " No")]
        assert pooled.loglikelihood(pairs) == pytest.approx(vllm.loglikelihood(pairs), abs=1e-4)
    finally:
        pooled.close()
    assert not vllm_processes(), "engine processes left behind by close()"


def vllm_processes() -> list[str]:
    """vLLM's own engine-core and worker processes anywhere on the machine (they rename themselves)."""
    import psutil

    return [p.info["name"] for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("VLLM::")]


def test_a_failing_engine_raises_instead_of_hanging(tmp_path: Path) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"]}')
    with pytest.raises(RuntimeError, match=r"data-parallel engine [01] failed"):
        load_backend(ModelRef(str(broken), options={"data_parallel_size": 2}), "vllm")


def test_token_shift_through_vllm_agrees_with_hf(lab_base: Path, vllm: Any, lab_prompts: list[str],
                                                 tmp_path: Path) -> None:
    """The analyse job's vLLM path (prompt_logprobs, one engine per model) against its HF path on
    the same responses: mean logp_diff and rank_shift within 1e-3, and the rank shares equal."""
    import torch
    from transformers import AutoModelForCausalLM

    from engine.analysis import tokens

    base = AutoModelForCausalLM.from_pretrained(lab_base, dtype=torch.float32).eval()
    tuned = AutoModelForCausalLM.from_pretrained(lab_base, dtype=torch.float32).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.05 * (p.std() if p.numel() > 1 else 1))
    tuned.save_pretrained(tmp_path / "tuned")
    vllm.tokenizer.save_pretrained(tmp_path / "tuned")
    answers = vllm.generate(lab_prompts, SamplingParams(max_new_tokens=20))
    responses = [tokens.encode_response(vllm.tokenizer, p, a[0].text)
                 for p, a in zip(lab_prompts, answers, strict=True) if a[0].text]
    hf_side = tokens.summarise(tokens.score_pair(base, tuned, responses)).metrics
    scored = [tokens.vllm_token_scores(str(path), responses, max_model_len=512)
              for path in (lab_base, tmp_path / "tuned")]
    vllm_side = tokens.summarise(tokens.from_vllm(responses, *scored)).metrics
    assert vllm_side["tokens"] == hf_side["tokens"] > 100
    assert abs(vllm_side["logp_diff"] - hf_side["logp_diff"]) < 1e-3
    assert abs(vllm_side["rank_shift"] - hf_side["rank_shift"]) < 1e-3
    assert vllm_side["share_base_rank1"] == pytest.approx(hf_side["share_base_rank1"], abs=1e-3)
