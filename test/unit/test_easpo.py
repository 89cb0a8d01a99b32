"""EASPO step math: schedule of preference steps, candidates, selection, continuation, losses."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from local_lib.config import ConfigError, load_config
from local_lib.models.gradtts import GradTTS, GradTTSConfig, log_ratio, reverse_diffusion
from local_lib.rl.easpo import (
    EASPOConfig,
    choose_continuation,
    draw_candidates,
    easpo_rollout,
    eligible_steps,
    finish_candidates,
    freeze_for_easpo,
    frozen_reference,
    preference_loss,
    preference_steps,
    select_pair,
    take,
)
from local_lib.rl.easpo_loop import EASPORecipeConfig, EASPOTrainSection

CONF = Path(__file__).resolve().parents[2] / "egs" / "esd" / "easpo" / "conf"
TINY = GradTTSConfig(
    n_mels=8,
    cond_dim=8,
    enc_channels=16,
    enc_filter_channels=16,
    enc_layers=1,
    prenet_layers=1,
    dp_filter_channels=8,
    dec_dim=8,
    dec_dim_mults=(1, 2),
    dec_groups=4,
    dec_attention=False,
)


def fake_scorer(
    mel: torch.Tensor, t: torch.Tensor, mask: torch.Tensor, emo: torch.Tensor
) -> torch.Tensor:
    """Prefers states whose valid frames average close to 0.3."""
    fmask = mask[..., None].float()
    mean = (mel * fmask).sum((1, 2)) / (fmask.sum((1, 2)) * mel.shape[-1])
    return -(mean - 0.3).abs()


def test_eligible_steps_follow_kappa_and_t_range() -> None:
    # N = 8: state times 1 - i/8; kappa 0.25 skips steps 0, 1
    assert eligible_steps(EASPOConfig(n_steps=8, kappa=0.25, t_max=1.0)) == [2, 3, 4, 5, 6, 7]
    assert eligible_steps(EASPOConfig(n_steps=8, kappa=0.0, t_max=0.5)) == [4, 5, 6, 7]
    assert eligible_steps(EASPOConfig(n_steps=8, kappa=0.25, t_min=0.3, t_max=0.75)) == [2, 3, 4, 5]
    cfg = EASPOConfig(n_steps=8, steps_per_chain=3)
    steps = preference_steps(cfg, torch.Generator().manual_seed(0))
    assert (
        len(set(steps)) == 3 and steps == sorted(steps) and set(steps) <= set(eligible_steps(cfg))
    )


def test_config_validation_and_yaml(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loss must be one of"):
        EASPOConfig(loss="dpo")
    with pytest.raises(ValueError, match="only 2 steps are eligible"):
        EASPOConfig(n_steps=4, kappa=0.5, steps_per_chain=3)
    # one preference step ends the rollout, so the winner ablation would equal the main run
    with pytest.raises(ValueError, match="winner needs steps_per_chain > 1"):
        EASPOConfig(continuation="winner", steps_per_chain=1)

    def load(name: str) -> tuple[EASPOConfig, EASPOTrainSection]:
        conf = load_config(CONF / name, EASPORecipeConfig)
        return conf.rollout, conf.train

    for name in ("easpo_mini.yaml", "easpo.yaml", "easpo_debug.yaml"):
        cfg, _ = load(name)
        assert (cfg.k, cfg.kappa, cfg.t_max, cfg.continuation) == (4, 0.25, 0.75, "random")
    for suffix in ("_mini", "_debug"):
        k2, k2_train = load(f"easpo_k2{suffix}.yaml")
        winner, winner_train = load(f"easpo_winner{suffix}.yaml")
        main, main_train = load(f"easpo{suffix}.yaml")
        # each ablation changes exactly one thing against the main run
        assert k2 == dataclasses.replace(main, k=2) and k2_train == main_train
        assert winner == dataclasses.replace(main, continuation="winner")
        assert winner_train == main_train
    bad = tmp_path / "easpo.yaml"
    bad.write_text("rollout:\n  kapa: 0.3\n")
    with pytest.raises(ConfigError, match="easpo.yaml: unknown key.s. rollout.kapa"):
        load_config(bad, EASPORecipeConfig)
    bad.write_text("train:\n  steps: 30\n")  # the one spelling is train.num_steps
    with pytest.raises(ConfigError, match="easpo.yaml: unknown key.s. train.steps"):
        load_config(bad, EASPORecipeConfig)


def test_candidates_are_drawn_from_the_transition() -> None:
    mean = torch.full((2, 50, 8), 0.7)
    mask = torch.ones(2, 50, dtype=torch.bool)
    mask[1, 30:] = False
    cand = draw_candidates(
        mean, beta_t=4.0, h=0.05, k=64, mask=mask, generator=torch.Generator().manual_seed(0)
    )
    assert cand.shape == (64, 2, 50, 8)
    valid = cand[:, 0]
    assert float(valid.mean()) == pytest.approx(0.7, abs=0.02)
    assert float(valid.var()) == pytest.approx(0.2, rel=0.05)  # hβ_t = 0.05 * 4
    assert not cand[:, 1, 30:].any()


def test_selection_and_continuation_with_fake_scorer() -> None:
    # four candidates per item with constant values; item 0 and item 1 rank them differently
    values = torch.tensor([[0.0, 0.9], [0.25, 0.5], [1.0, 0.31], [0.6, -2.0]])  # [k, B]
    cand = values[:, :, None, None].expand(4, 2, 3, 8).clone()
    mask = torch.ones(2, 3, dtype=torch.bool)
    scores = torch.stack([fake_scorer(c, torch.zeros(2), mask, torch.zeros(2)) for c in cand])
    win, lose = select_pair(scores)
    assert win.tolist() == [1, 2] and lose.tolist() == [2, 3]
    assert take(cand, win)[:, 0, 0].tolist() == pytest.approx([0.25, 0.31])
    assert torch.equal(choose_continuation(cand, win, "winner"), take(cand, win))
    # random continuation: the fixed RNG's draw, independent of the winner
    picked = choose_continuation(cand, win, "random", torch.Generator().manual_seed(3))
    expected = torch.randint(4, (2,), generator=torch.Generator().manual_seed(3))
    assert torch.equal(picked, take(cand, expected))
    # and over many draws every candidate is taken about equally often, not just the winner
    g = torch.Generator().manual_seed(0)
    draws = [choose_continuation(cand, win, "random", g)[0, 0, 0].item() for _ in range(400)]
    freq = torch.tensor([draws.count(v) for v in values[:, 0].tolist()]) / 400
    assert torch.all((freq > 0.15) & (freq < 0.35)), freq


def test_easpo_loss_by_hand() -> None:
    # one item, one frame, one bin; hβ_t = 0.5 (h = 0.1, β_t = 5)
    mask = torch.ones(1, 1, dtype=torch.bool)
    m_pol, m_ref = torch.tensor([[[0.5]]]), torch.tensor([[[0.0]]])
    x_win, x_lose = torch.tensor([[[1.0]]]), torch.tensor([[[-1.0]]])
    # r = (‖x − m_ref‖² − ‖x − m_θ‖²) / (2hβ): win (1 − 0.25)/1 = 0.75 ; lose (1 − 2.25)/1 = −1.25
    r_w = log_ratio(x_win, m_pol, m_ref, 5.0, 0.1, mask)
    r_l = log_ratio(x_lose, m_pol, m_ref, 5.0, 0.1, mask)
    assert r_w.tolist() == pytest.approx([0.75]) and r_l.tolist() == pytest.approx([-1.25])
    # SPO, β = 0.5: −log σ(0.5 · 2) = log(1 + e^{−1}) = 0.3132617
    assert preference_loss(r_w, r_l, 0.5, "spo").tolist() == pytest.approx([0.3132617])
    # mse, scores 3 and 1: (0.5 · 2 − 2)² = 1
    loss = preference_loss(r_w, r_l, 0.5, "mse", torch.tensor([3.0]), torch.tensor([1.0]))
    assert loss.tolist() == pytest.approx([1.0])
    # a two-item batch: margins β(r_w − r_l) = 0.5·[1, −2] = [0.5, −1.0]
    r_w2, r_l2 = torch.tensor([2.0, -1.0]), torch.tensor([1.0, 1.0])
    spo = preference_loss(r_w2, r_l2, 0.5, "spo")
    assert spo.tolist() == pytest.approx([0.4740770, 1.3132617])  # log(1+e^-0.5), log(1+e^1)
    mse = preference_loss(
        r_w2, r_l2, 0.5, "mse", torch.tensor([3.0, 0.5]), torch.tensor([1.0, 0.0])
    )
    assert mse.tolist() == pytest.approx([2.25, 2.25])  # (0.5 − 2)², (−1 − 0.5)²
    with pytest.raises(ValueError, match="needs the winner"):
        preference_loss(r_w2, r_l2, 0.5, "mse")


def _policy_and_batch() -> tuple[GradTTS, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    policy = GradTTS(TINY, vocab_size=10, n_speakers=1, n_emotions=3)
    batch = {
        "text": torch.tensor([[1, 2, 3, 4], [5, 6, 0, 0]]),
        "text_lengths": torch.tensor([4, 2]),
        "speaker": None,
        "emotion": torch.tensor([1, 2]),
    }
    return policy, batch


def test_freeze_for_easpo() -> None:
    policy, _ = _policy_and_batch()
    params = freeze_for_easpo(policy)
    assert all(not p.requires_grad for p in policy.encoder.parameters())
    assert not policy.encoder.training
    assert {id(p) for p in params} == {id(p) for p in policy.decoder.parameters()}
    assert all(p.requires_grad for p in params)


@pytest.mark.parametrize("form", ["spo", "mse"])
def test_rollout_trains_only_the_decoder(form: str) -> None:
    policy, batch = _policy_and_batch()
    freeze_for_easpo(policy)
    reference = frozen_reference(policy)
    cfg = EASPOConfig(n_steps=6, k=3, steps_per_chain=2, beta=1.0, loss=form)
    out = easpo_rollout(
        policy, reference, fake_scorer, **batch, cfg=cfg, generator=torch.Generator().manual_seed(0)
    )
    # policy == reference at the start: every ratio is 0, so the SPO loss is exactly log 2
    assert out.stats["ratio_margin"] == pytest.approx(0.0, abs=1e-5)
    assert out.stats["ratio_mean"] == pytest.approx(0.0, abs=1e-5)
    assert out.stats["ratio_std"] == pytest.approx(0.0, abs=1e-5)
    assert out.stats["acc"] == 0.0  # no margin is > 0 when every ratio is 0
    if form == "spo":
        assert float(out.loss.detach()) == pytest.approx(math.log(2.0), abs=1e-5)
    assert out.stats["score_gap"] >= 0.0
    out.loss.backward()
    assert all(p.grad is None for p in policy.encoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.decoder.parameters())
    assert all(p.grad is None for p in reference.parameters())


def test_rollout_is_reproducible_and_continuation_matters() -> None:
    policy, batch = _policy_and_batch()
    freeze_for_easpo(policy)
    reference = frozen_reference(policy)
    with torch.no_grad():  # make policy differ from reference so ratios are non-zero
        for p in policy.decoder.parameters():
            p.add_(0.05 * torch.randn_like(p))
    cfg = EASPOConfig(n_steps=6, k=3, steps_per_chain=2, kappa=0.0, t_max=1.0)
    runs = [
        easpo_rollout(
            policy,
            reference,
            fake_scorer,
            **batch,
            cfg=c,
            generator=torch.Generator().manual_seed(5),
        ).stats
        for c in (cfg, cfg, dataclasses.replace(cfg, continuation="winner"))
    ]
    assert runs[0] == runs[1]
    assert runs[0]["ratio_margin"] != 0.0 and runs[0]["ratio_std"] > 0.0
    assert 0.0 <= runs[0]["acc"] <= 1.0
    assert runs[2] != runs[0]  # the winner continuation takes another path through the chain


def test_finish_candidates_runs_each_candidate_by_the_ode() -> None:
    policy, batch = _policy_and_batch()
    with torch.no_grad():
        enc = policy.encode(batch["text"], batch["text_lengths"], None, batch["emotion"])
        mu, mask, _ = policy.expand_prior(enc, 1.0)
        cand = torch.randn((3, *mu.shape), generator=torch.Generator().manual_seed(1))
        cand = cand * mask[None, ..., None]
        done = finish_candidates(policy, cand, mu, mask, None, batch["emotion"], 4, 6)
        assert done.shape == (3 * mu.shape[0], *mu.shape[1:])
        for j in range(3):  # candidate-major: row j*B + b is candidate j of item b
            for b in range(mu.shape[0]):

                def score_fn(x: torch.Tensor, t: torch.Tensor, b: int = b) -> torch.Tensor:
                    emo = batch["emotion"][b : b + 1]
                    return policy.score(x, mu[b : b + 1], mask[b : b + 1], t, None, emo)

                alone = reverse_diffusion(
                    score_fn, cand[j, b : b + 1], mu[b : b + 1], mask[b : b + 1], 6,
                    policy.schedule, True, None, 4,
                )  # fmt: skip
                row = done[j * mu.shape[0] + b]
                assert torch.allclose(row, alone[0], atol=1e-5)
        # the ODE moved them: finishing is not the identity
        assert not torch.allclose(done, cand.flatten(0, 1))


def test_finished_judge_scores_the_finished_mels_at_t0() -> None:
    policy, batch = _policy_and_batch()
    freeze_for_easpo(policy)
    reference = frozen_reference(policy)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def recording_scorer(mel, t, mask, emo):  # type: ignore[no-untyped-def]
        seen.append((mel.clone(), t.clone()))
        return fake_scorer(mel, t, mask, emo)

    cfg = EASPOConfig(n_steps=6, k=3, steps_per_chain=1, kappa=0.0, t_max=1.0)
    outs = {}
    for judge in ("branch", "finished"):
        seen.clear()
        outs[judge] = easpo_rollout(
            policy, reference, recording_scorer, **batch,
            cfg=dataclasses.replace(cfg, judge=judge), generator=torch.Generator().manual_seed(2),
        )  # fmt: skip
        assert len(seen) == 1
        outs[judge + "_seen"] = seen[0]
    (branch_mel, branch_t), (fin_mel, fin_t) = outs["branch_seen"], outs["finished_seen"]
    # the same draws (same seed): the branch judge sees the candidates at their state time
    # 1 - (step + 1)/N, the finished judge those candidates after the ODE, at t = 0
    step = round((1.0 - float(branch_t[0])) * 6) - 1
    assert torch.allclose(branch_t, torch.full_like(branch_t, 1.0 - (step + 1) / 6))
    assert torch.equal(fin_t, torch.zeros_like(fin_t))
    with torch.no_grad():
        enc = policy.encode(batch["text"], batch["text_lengths"], None, batch["emotion"])
        mu, mask, _ = policy.expand_prior(enc, 1.0)
        expected = finish_candidates(
            policy, branch_mel.view(3, *mu.shape), mu, mask, None, batch["emotion"], step + 1, 6
        )
    assert torch.allclose(fin_mel, expected, atol=1e-5)
    with pytest.raises(ValueError, match="judge must be one of"):
        EASPOConfig(judge="noisy")
