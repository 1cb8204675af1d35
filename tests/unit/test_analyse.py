"""The analyses: PCA shift on synthetic features with known answers, token shift on a real tiny
model (against itself: nothing moves; against a perturbed copy: the KL does), and the `analyse`
job end to end on real eval samples, down to the `shift_results` rows."""

from __future__ import annotations

import copy
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from engine.analysis import pca, tokens
from engine.experiments.spec import SpecErrors, load_experiment_text
from tests.conftest import job_context

RNG = np.random.default_rng(0)


def plane_features(width: int = 6) -> np.ndarray:
    """Features in the (e0, e1) plane only, uncorrelated, wider along e0: PC1 = e0, PC2 = e1 exactly."""
    x = np.zeros((12, width))
    x[:, :2] = [(a, b) for a in (-5.0, 5.0) for b in (-1.0, 1.0)] * 3
    return x + 3.0  # an offset changes the mean projections, not the shift


# -- PCA shift: pure maths ---------------------------------------------------------------------


def test_identical_features_give_zero_shift() -> None:
    layers = [RNG.normal(size=(10, 8)) for _ in range(4)]
    shift = pca.pca_shift(layers, [x.copy() for x in layers], [0, 1, 2, 3])
    assert shift.d == 0.0 and all(p.shift == 0.0 for p in shift.points)
    assert [p.layer for p in shift.points] == [0, 1, 2, 3]


def test_translation_in_the_pc_plane_gives_its_norm() -> None:
    base = plane_features()
    t = np.array([3.0, 4.0, 0, 0, 0, 0])
    shift = pca.pca_shift([base] * 3, [base + t] * 3, [0, 1, 2])
    assert shift.d == pytest.approx(5.0, abs=1e-9)
    point = shift.points[0]
    assert point.tuned - point.base == pytest.approx(np.array([3.0, 4.0]), abs=1e-9)  # PC1 = +e0, PC2 = +e1
    assert point.explained[0] > point.explained[1] > 0 and point.explained.sum() == pytest.approx(1.0)


def test_translation_out_of_the_plane_is_invisible_and_layers_are_averaged_before_the_norm() -> None:
    base = plane_features()
    out_of_plane = pca.pca_shift([base], [base + np.array([0, 0, 7.0, 0, 0, 0])], [0])
    assert out_of_plane.d == pytest.approx(0.0, abs=1e-9)
    there, back = np.array([2.0, 0, 0, 0, 0, 0]), np.array([-2.0, 0, 0, 0, 0, 0])
    shift = pca.pca_shift([base, base], [base + there, base + back], [0, 1])
    assert [p.shift for p in shift.points] == pytest.approx([2.0, 2.0])
    assert shift.d == pytest.approx(0.0, abs=1e-9)  # || mean of (+2, -2) || = 0, not the mean of norms


def test_components_have_a_fixed_sign() -> None:
    base = plane_features()
    first, _ = pca.fit_pca2(base)
    flipped, _ = pca.fit_pca2(-base)  # the same directions; an SVD may return either sign
    assert np.allclose(first, flipped)
    assert all(c[np.abs(c).argmax()] > 0 for c in first)


def test_pooling_paper_counts_padding_and_masked_does_not() -> None:
    hidden = np.zeros((2, 4, 3))
    hidden[0, 2:] = [[1, 2, 3], [3, 4, 5]]  # text 0: two pad positions (left), then two tokens
    hidden[0, :2] = 10.0  # whatever the model puts at padding
    hidden[1] = [[1, 1, 1], [2, 2, 2], [3, 3, 3], [4, 4, 4]]
    mask = np.array([[0, 0, 1, 1], [1, 1, 1, 1]])
    masked = pca.pool(hidden, mask, "masked")
    paper = pca.pool(hidden, mask, "paper")
    assert masked[0] == pytest.approx([2, 3, 4]) and paper[0] == pytest.approx([6, 6.5, 7])
    assert masked[1] == pytest.approx(paper[1])  # no padding: the two poolings agree
    with pytest.raises(ValueError, match="unknown pooling"):
        pca.pool(hidden, mask, "max")


def test_bad_inputs_are_one_line_errors() -> None:
    with pytest.raises(ValueError, match="at least 3 texts"):
        pca.fit_pca2(np.ones((2, 5)))
    with pytest.raises(ValueError, match=r"no layer 7 in this model \(layers 0-4"):
        pca.resolve_layers([1, 7], 5)
    assert pca.resolve_layers("all", 3) == [0, 1, 2] and pca.resolve_layers([2, 0, 2], 3) == [0, 2]


def test_spec_accepts_the_analysis_options() -> None:
    base = "name: x\nbase: {model: tiny-lab}\n"
    data = load_experiment_text(base + "analysis: {token_shift: {items: 5, batch_size: 4, backend: hf},"
                                       " pca_shift: {pooling: masked, layers: [0, 2]}}\n").data
    assert data["analysis"]["token_shift"] == {"items": 5, "batch_size": 4, "backend": "hf"}
    assert data["analysis"]["pca_shift"]["pooling"] == "masked"
    for bad, message in [("{pca_shift: {items: 2}}", "must be >= 3"),
                         ("{token_shift: {backend: vlm}}", "did you mean 'vllm'"),
                         ("{pca_shift: {pooling: mean}}", "expected one of paper, masked")]:
        with pytest.raises(SpecErrors, match=message):
            load_experiment_text(base + f"analysis: {bad}\n")


# -- token shift: pure maths -------------------------------------------------------------------


def test_position_stats_ranks_and_kl_by_hand() -> None:
    torch = pytest.importorskip("torch")
    base = torch.log(torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]]))
    tuned = torch.log(torch.tensor([[0.2, 0.3, 0.5], [0.1, 0.2, 0.7]]))
    _, lt, rb, rt, kl = tokens.position_stats(base, tuned, torch.tensor([2, 0]))
    assert rb.tolist() == [3, 3] and rt.tolist() == [1, 3]
    assert lt.tolist() == pytest.approx([math.log(0.5), math.log(0.1)])
    expected = 0.2 * math.log(0.2 / 0.5) + 0.3 * 0 + 0.5 * math.log(0.5 / 0.2)
    assert kl.tolist() == pytest.approx([expected, 0.0], abs=1e-6)


def scores(ids: list[int], base_ranks: list[int], tuned_ranks: list[int], diff: float) -> tokens.TokenScores:
    n = len(ids)
    return tokens.TokenScores(np.array(ids), np.zeros(n), np.full(n, diff), np.array(base_ranks),
                              np.array(tuned_ranks), np.full(n, 0.1))


def test_summaries_shares_groups_and_top_tokens() -> None:
    first = tokens.summarise([scores([5, 6, 5, 7], [1, 2, 4, 3], [1, 1, 1, 1], 0.5)])
    m = first.metrics
    assert (m["tokens"], m["logp_diff"], m["kl"]) == (4, 0.5, pytest.approx(0.1))
    assert (m["share_base_rank1"], m["share_base_rank2_3"], m["share_base_rank_gt3"]) == (0.25, 0.5, 0.25)
    assert m["rank_shift"] == pytest.approx((0 + 1 + 3 + 2) / 4)
    second = tokens.summarise([scores([5, 5], [2, 2], [1, 1], 1.5)])
    group = tokens.combine([first, second, tokens.summarise([])])
    assert group.metrics["tokens"] == 6 and group.metrics["logp_diff"] == pytest.approx(1.0)  # benchmarks weigh alike
    top = tokens.top_tokens(group.shifted, lambda t: f"<{t}>")
    assert top[0] == {"token": "<5>", "count": 3, "mean_base_rank": pytest.approx(8 / 3)}
    assert [t["token"] for t in top] == ["<5>", "<7>", "<6>"]  # ties by count: higher mean rank first


# -- token shift on a real tiny model ------------------------------------------------------------


@pytest.fixture(scope="module")
def lab_model(tiny_model: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model).eval(), AutoTokenizer.from_pretrained(tiny_model)


def perturbed(model, scale: float = 0.05, seed: int = 0):
    """A copy of `model` with Gaussian noise on every weight: a stand-in for a tuned model."""
    import torch

    other = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * scale * (p.std() if p.numel() > 1 else 1))
    return other


def lab_responses(tokenizer) -> list[tokens.Response]:
    pairs = [("What is 3 + 4?", "7"), ("Spell 'cat' backward.", "tac, which is the word cat spelled backward"),
             ("Is every cat an animal?", "Yes"), ("How many 1 bits are in 5?", "2 bits, because 5 is 101")]
    return [tokens.encode_response(tokenizer, tokenizer.apply_chat_template(
        [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True, enable_thinking=False), a)
        for q, a in pairs]


@pytest.mark.slow
def test_a_model_against_itself_shifts_nothing(lab_model) -> None:
    model, tokenizer = lab_model
    responses = lab_responses(tokenizer)
    batched = tokens.score_pair(model, copy.deepcopy(model), responses, batch_size=3, pad_id=tokenizer.pad_token_id)
    m = tokens.summarise(batched).metrics
    # a copy is not bit-identical arithmetic on CPU (kernels depend on memory alignment): 0 up to float noise
    assert m["kl"] == pytest.approx(0, abs=1e-6) and m["logp_diff"] == pytest.approx(0, abs=1e-6)
    assert m["rank_shift"] == 0.0
    tuned_rank1 = np.mean(np.concatenate([s.rank_tuned for s in batched]) == 1)
    assert m["share_base_rank1"] == tuned_rank1
    assert m["tokens"] == sum(len(r.ids) - r.start for r in responses)
    single = tokens.score_pair(model, model, [*responses, tokens.Response(responses[0].ids[:3], 3)], batch_size=1)
    assert len(single) == 5 and len(single[-1].token_ids) == 0  # no completion token: nothing to score
    for a, b in zip(batched, single[:4], strict=True):  # right padding changes nothing
        assert np.allclose(a.logp_base, b.logp_base, atol=1e-5) and (a.rank_base == b.rank_base).all()


@pytest.mark.slow
def test_log_probs_line_up_with_a_plain_forward_pass(lab_model) -> None:
    import torch

    model, tokenizer = lab_model
    response = lab_responses(tokenizer)[1]
    scored = tokens.score_pair(model, model, [response])[0]
    with torch.inference_mode():
        logp = torch.log_softmax(model(torch.tensor([response.ids])).logits[0].float(), -1)
    expected = [float(logp[p - 1, response.ids[p]]) for p in range(response.start, len(response.ids))]
    assert scored.logp_base == pytest.approx(expected, abs=1e-5)
    assert scored.token_ids.tolist() == response.ids[response.start :]


@pytest.mark.slow
def test_a_perturbed_copy_moves_the_distribution(lab_model) -> None:
    model, tokenizer = lab_model
    scored = tokens.score_pair(model, perturbed(model), lab_responses(tokenizer), batch_size=2,
                               pad_id=tokenizer.pad_token_id)
    m = tokens.summarise(scored).metrics
    assert m["kl"] > 1e-4 and all(math.isfinite(v) for v in m.values())
    assert any((s.rank_base != s.rank_tuned).any() or not np.allclose(s.logp_base, s.logp_tuned) for s in scored)


@pytest.mark.slow
def test_hidden_features_batching_and_pooling(lab_model) -> None:
    model, tokenizer = lab_model
    texts = ["What is 3 + 4?", "Spell the word cat backward, letter by letter.", "Yes", "Count the bits of 12."]
    layers, whole = pca.hidden_features(model, tokenizer, texts, max_tokens=8, pooling="paper", batch_size=4)
    _, split = pca.hidden_features(model, tokenizer, texts, max_tokens=8, pooling="paper", batch_size=1)
    assert layers == list(range(model.config.num_hidden_layers + 1)) and whole[0].shape == (4, 128)
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(whole, split, strict=True))
    _, masked = pca.hidden_features(model, tokenizer, texts, max_tokens=8, pooling="masked", layers=[0, 2])
    assert not np.allclose(masked[1][2], whole[2][2])  # "Yes" is mostly padding: the poolings differ
    assert np.allclose(masked[1][1], whole[2][1], atol=1e-5)  # the longest text has no padding


# -- the analyse job end to end ----------------------------------------------------------------


@pytest.fixture(scope="module")
def tuned_model(tiny_model: Path, lab_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, tokenizer = lab_model
    folder = tmp_path_factory.mktemp("tuned") / "model"
    perturbed(model, scale=0.1).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def shift_events(run_dir: Path) -> list[dict]:
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["type"] == "shift"]


@pytest.mark.slow
def test_analyse_job_end_to_end(tmp_path: Path, tiny_model: Path, tuned_model: Path) -> None:
    from engine.daemon.ingest import ingest_run
    from engine.jobs import analyse
    from engine.jobs import eval as eval_job
    from storage import Store

    eval_params = {"model": str(tuned_model), "suite": "lab", "limit": 4,
                   "generation": {"max_new_tokens": 12, "temperature": 1.0, "seed": 1}}  # sampled: some tokens off the base top-1
    eval_job.run(job_context(tmp_path, "eval", eval_params, run_id="eval-tuned", name="sft"))
    params = {"base_model": str(tiny_model), "model": {"name": str(tuned_model), "revision": None},
              "samples_from": "eval-tuned", "pca_shift": {"items": 6, "max_tokens": 32, "pooling": "paper",
                                                          "layers": "all"},
              "token_shift": {"items": 4, "batch_size": 3}}
    ctx = job_context(tmp_path, "analyse", params, run_id="analyse-1", name="sft")
    result = analyse.run(ctx)
    assert set(result["pca_shift"]["d"]) == {"math", "other", "non"} == set(result["token_shift"]["kl"])
    assert all(d > 0 for d in result["pca_shift"]["benchmarks"].values())
    assert all(kl > 0 for kl in result["token_shift"]["kl"].values())

    events = shift_events(ctx.run_dir)
    points = [e for e in events if e["metric"] == "points"]
    assert len(points) == 6 * 5 and {e["layer"] for e in points} == set(range(5))  # embeddings + 4 blocks
    assert set(points[0]["payload"]) == {"base", "tuned", "explained_variance"}
    d_rows = {(e["benchmark"], e["group"]): e["value"] for e in events if e["analysis"] == "pca_shift"
              and e["metric"] == "d"}
    assert len(d_rows) == 9 and d_rows[(None, "math")] == pytest.approx(
        (d_rows[("lab_basic_arithmetic", "math")] + d_rows[("lab_chain_sum", "math")]) / 2)
    token_metrics = {e["metric"] for e in events if e["analysis"] == "token_shift" and e["benchmark"] is None}
    assert token_metrics == {"logp_diff", "kl", "rank_shift", "share_base_rank1", "share_base_rank2_3",
                             "share_base_rank_gt3", "tokens", "top_tokens"}
    tops = [e for e in events if e["metric"] == "top_tokens"]
    assert len(tops) == 9 and all(e["value"] == len(e["payload"]) <= 20 for e in tops)
    listed = next(e["payload"][0] for e in tops if e["payload"])  # the perturbed model shifts some tokens
    assert set(listed) == {"token", "count", "mean_base_rank"} and listed["mean_base_rank"] > 1
    progress = [json.loads(x) for x in (ctx.run_dir / "events.jsonl").read_text().splitlines()]
    assert [e for e in progress if e["type"] == "progress"][-1]["step"] == 18  # 2 PCA passes + 1 token pass x 6

    store = Store.open(None)
    ingest_run(store, "analyse-1", ctx.run_dir)
    rows = store.con.execute("SELECT count(*), count(DISTINCT analysis) FROM shift_results").fetchone()
    assert rows == (len(events), 2)

    analyse.run(job_context(tmp_path, "analyse", params, run_id="analyse-1", name="sft"))  # a retry
    assert len(shift_events(ctx.run_dir)) == len(events)  # no row written twice


def test_analyse_job_bad_parameters_are_one_line_errors(tmp_path: Path) -> None:
    from engine.jobs import analyse

    with pytest.raises(ValueError, match="ask for no analysis"):
        analyse.run(job_context(tmp_path, "analyse", {"base_model": "a", "model": "b"}))
    with pytest.raises(ValueError, match="analyse needs `model`"):
        analyse.run(job_context(tmp_path, "analyse", {"base_model": "a", "model": None, "token_shift": {}}))
    with pytest.raises(ValueError, match="no benchmarks to analyse"):
        analyse.run(job_context(tmp_path, "analyse", {"base_model": "a", "model": "b", "samples_from": "nope",
                                                      "token_shift": {"items": 3}}))


# -- GPU paths (skipped without CUDA) --------------------------------------------------------------


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


needs_cuda = pytest.mark.skipif(not _cuda(), reason="needs CUDA")
needs_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs vllm (.[gpu])")


@pytest.mark.gpu
@needs_cuda
@needs_vllm
def test_vllm_prompt_logprobs_agree_with_transformers(tiny_model: Path, lab_model) -> None:
    model, tokenizer = lab_model
    responses = lab_responses(tokenizer)
    hf = tokens.score_pair(model, model, responses)
    vllm = tokens.vllm_token_scores(str(tiny_model), responses, dtype="float32")
    for ours, (logp, rank) in zip(hf, vllm, strict=True):
        assert logp == pytest.approx(ours.logp_base, abs=1e-3)
        assert np.mean(rank == ours.rank_base) > 0.9  # near-ties may rank differently


@pytest.mark.gpu
@needs_cuda
def test_token_shift_on_cuda_in_bf16(lab_model) -> None:
    import torch

    model, tokenizer = lab_model
    gpu = copy.deepcopy(model).to("cuda", torch.bfloat16)
    m = tokens.summarise(tokens.score_pair(gpu, gpu, lab_responses(tokenizer), batch_size=3,
                                           pad_id=tokenizer.pad_token_id)).metrics
    assert m["kl"] == pytest.approx(0, abs=1e-6) and m["rank_shift"] == 0
