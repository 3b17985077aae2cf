"""Multi-seed PPO: the stacked maths equals agents.ppo's per agent, agents stay independent."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from agents import multiseed as ms
from agents import ppo, stacked
from agents.base import space_spec
from rl.checkpoint import load_checkpoint
from rl.config import replace_config
from rl.evaluation import EvalResult, solved_thresholds
from rl.runs import EpisodeTracker, list_snapshots
from rl.seeding import seed_everything
from rl.tensors import GroupedRunningMeanStd, RunningMeanStd
from rl.vector import make_vector_env

TINY = {
    "num_envs": 4,
    "num_steps": 16,
    "total_timesteps": 128,  # 2 iterations per agent
    "num_minibatches": 2,
    "update_epochs": 2,
    "eval_episodes": 0,
    "progress": False,
    "write_run": False,
}
CARTPOLE = "sandbox/CartPole-v1"
# For the early-stop tests: every agent's one-episode window fills in its first iteration,
# whatever the seeds. A random CartPole episode outlasts 64 steps about 1 time in 100, so all
# four of an agent's envs do so about 1 time in 10**8 (with TINY's 16 steps: 1 time in 7).
FILLS = {**TINY, "num_steps": 64}
ITER = FILLS["num_envs"] * FILLS["num_steps"]  # env steps per agent per iteration


def tiny(seeds: tuple[int, ...], **overrides: Any) -> ms.MultiSeedConfig:
    base = ppo.default_config(CARTPOLE, **TINY)
    settings = {"write_runs": False, "eval_episodes": 0, "progress": False, **overrides}
    return ms.MultiSeedConfig(ppo=base, seeds=seeds, **settings)


def spaces_of(env_id: str) -> dict[str, Any]:
    env = make_vector_env(env_id, 1)
    try:
        return space_spec(env.single_observation_space, env.single_action_space)
    finally:
        env.close()


def make_stacked(env_id: str, seeds: tuple[int, ...], num_envs: int = 4):
    spaces = spaces_of(env_id)
    agents = []
    for seed in seeds:
        seed_everything(seed)
        agents.append(ppo.ActorCritic(spaces, (64, 64), "tanh"))
    return stacked.StackedActorCritic(agents, num_envs, "tanh"), agents, spaces


def test_smoke_train_writes_ppo_compatible_runs(tmp_path) -> None:
    cfg = tiny((0, 1, 2), write_runs=True, runs_root=str(tmp_path), eval_episodes=5)
    result = ms.train(cfg)
    assert len(result.per_seed) == 3
    for row in result.per_seed:
        for name in ppo.LOSS_NAMES:
            assert math.isfinite(row[f"losses/{name}"]), name
        assert row["global_step"] == 128
        assert math.isfinite(row["eval_mean_return"])
    assert result.summary_path is not None and result.summary_path.is_file()
    assert math.isfinite(result.summary["eval_std_return"])
    obs = torch.randn(16, 4)
    for k, run_dir in enumerate(result.run_dirs):
        assert f"__ppo__{cfg.seeds[k]}__" in run_dir.name
        assert (run_dir / "eval.json").is_file() and (run_dir / "config.json").is_file()
        ckpt = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
        # Every key agents.ppo writes but the env's exact state (K * N rows, not N).
        assert {"algo", "model", "optimizer", "config", "spaces", "next_obs", "rng"} <= ckpt.keys()
        assert ckpt["config"]["seed"] == cfg.seeds[k]
        policy = ppo.load_policy(ckpt)
        expected = result.policies[k].act(obs)
        assert torch.equal(policy.act(obs), expected)
        # The optimizer state loads into the Adam agents.ppo builds (what a resume does).
        adam = torch.optim.Adam(policy.agent.parameters(), eps=1e-5, fused=True)
        adam.load_state_dict(ckpt["optimizer"])


def test_agent_episodes_sum_each_agents_rows_as_the_episode_tracker_does() -> None:
    k_agents, num_envs = 3, 4
    generator = torch.Generator().manual_seed(0)
    done = torch.rand(k_agents * num_envs, generator=generator) < 0.5
    episode = {
        key: torch.rand(k_agents * num_envs, generator=generator)
        for key in ("r", "l", *EpisodeTracker.EXTRAS)
    }
    info = {"_episode": done, "episode": episode}
    grouped = ms.AgentEpisodes(k_agents, num_envs, torch.device("cpu"))
    grouped.record(info)
    grouped.record(info)
    for k in range(k_agents):
        rows = slice(k * num_envs, (k + 1) * num_envs)
        alone = EpisodeTracker(torch.device("cpu"))
        part = {"_episode": done[rows], "episode": {n: v[rows] for n, v in episode.items()}}
        alone.record(part)
        alone.record(part)
        torch.testing.assert_close(grouped.sums[k], alone.take())
    # An env without successes sums zeros there (no success rate), as the tracker does.
    plain = ms.AgentEpisodes(k_agents, num_envs, torch.device("cpu"))
    plain.record({"_episode": done, "episode": {n: episode[n] for n in ("r", "l")}})
    assert not plain.sums[:, 3:].any()


def test_a_dog_groups_runs_log_and_are_judged_on_their_success_rate() -> None:
    base = ppo.default_config("sandbox/DogTraining-v0", **{**TINY, "num_steps": 64})
    cfg = ms.MultiSeedConfig(
        ppo=base, seeds=(0, 1), write_runs=False, progress=False, eval_episodes=6
    )
    result = ms.train(cfg)
    bar = solved_thresholds("sandbox/DogTraining-v0")
    assert result.summary["solved_thresholds"] == bar and "success_rate" in bar
    for row, ev in zip(result.per_seed, result.evaluations, strict=True):
        assert 0.0 <= row["charts/success_rate"] <= 1.0  # a random dog's episodes end in ~20
        assert math.isfinite(row["losses/explained_variance"])
        assert ev.success_rate is not None and row["eval_success_rate"] == ev.success_rate
        assert row["solved"] == ev.meets(bar)
    rates = [ev.success_rate for ev in result.evaluations]
    assert result.summary["eval_mean_success_rate"] == pytest.approx(sum(rates) / 2)


def test_agents_differ_and_initial_weights_match_ppo_per_seed() -> None:
    net, agents, _ = make_stacked(CARTPOLE, (3, 7))
    for k, agent in enumerate(agents):
        ref = agent.state_dict()
        mine = net.state_dict(k)
        assert mine.keys() == ref.keys()
        for key in ref:
            assert torch.equal(mine[key], ref[key]), key
    result = ms.train(tiny((0, 1)))
    w0 = result.policies[0].agent.state_dict()
    w1 = result.policies[1].agent.state_dict()
    assert any(not torch.equal(w0[key], w1[key]) for key in w0)


@pytest.mark.parametrize("env_id", [CARTPOLE, "sandbox/Pendulum-v1"])
def test_a_subset_of_agents_acts_as_those_agents(env_id: str) -> None:
    net, agents, spaces = make_stacked(env_id, (3, 7, 11), num_envs=5)
    sub = net.subset([2, 0])
    assert sub.num_agents == 2 and net.num_agents == 3
    obs = torch.randn(10, *spaces["obs_shape"])
    for i, k in enumerate([2, 0]):
        for key, value in agents[k].state_dict().items():
            assert torch.equal(sub.state_dict(i)[key], value), key
    # Deterministic actions of the subset: agent 2's on rows 0-4, agent 0's on rows 5-9.
    expected = torch.cat(
        [agents[2].get_action(obs[:5], deterministic=True),
         agents[0].get_action(obs[5:], deterministic=True)]
    )  # fmt: skip
    torch.testing.assert_close(sub.get_action(obs, deterministic=True), expected)
    grouped = GroupedRunningMeanStd(3, tuple(spaces["obs_shape"]))
    grouped.update(torch.randn(3 * 8, *spaces["obs_shape"]))
    part = grouped.subset([2, 0])
    for i, k in enumerate([2, 0]):
        assert torch.equal(part.group(i).mean, grouped.group(k).mean)
        assert torch.equal(part.group(i).var, grouped.group(k).var)


@pytest.mark.parametrize("env_id", [CARTPOLE, "sandbox/Pendulum-v1"])
def test_stacked_loss_and_gradients_equal_ppo_per_agent(env_id: str) -> None:
    net, agents, spaces = make_stacked(env_id, (0, 1, 2))
    cfg = ppo.default_config(env_id, **TINY)
    k, m = 3, 32
    obs_dim = math.prod(spaces["obs_shape"])
    gen = torch.Generator().manual_seed(0)
    if spaces["action_kind"] == "discrete":
        actions = torch.randint(spaces["action_n"], (k, m), generator=gen)
    else:
        actions = torch.randn(k, m, *spaces["action_shape"], generator=gen)
    mb = {
        "obs": torch.randn(k, m, obs_dim, generator=gen),
        "actions": actions,
        "logprobs": torch.randn(k, m, generator=gen) * 0.1 - 0.7,
        "advantages": torch.randn(k, m, generator=gen),
        "returns": torch.randn(k, m, generator=gen),
        "values": torch.randn(k, m, generator=gen),
    }
    loss, stats = stacked.ppo_loss_per_agent(net, mb, cfg)
    stacked_grads = torch.autograd.grad(loss.sum(), net.params)
    for i, agent in enumerate(agents):
        batch = ppo.Batch(*(mb[name][i] for name in ppo.Batch._fields))
        ref_loss, ref_stats = ppo.ppo_loss(agent, batch, cfg)
        ref_loss.backward()
        torch.testing.assert_close(loss[i], ref_loss, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(stats[i], ref_stats, rtol=1e-5, atol=1e-6)
        ref_grads = [p.grad for p in agent.parameters()]
        grads = net.agent_tensors(list(stacked_grads), i)
        for got, want in zip(grads, ref_grads, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_grad_clipping_is_per_agent_and_matches_torch() -> None:
    net, agents, _ = make_stacked(CARTPOLE, (0, 1))
    gen = torch.Generator().manual_seed(1)
    for p in net.params:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-3
        p.grad[0] *= 1e6  # agent 0's gradients are huge; agent 1's well under the clip
    before = [p.grad[1].clone() for p in net.params]
    reference = [g.clone() for g in net.agent_tensors([p.grad for p in net.params], 0)]
    norms = stacked.clip_grad_norm_per_agent(net.params, 0.5)
    assert norms[0] > 1e3 and norms[1] < 0.5
    for p, old in zip(net.params, before, strict=True):
        assert torch.equal(p.grad[1], old)  # untouched by agent 0's clip
    for param, grad in zip(agents[0].parameters(), reference, strict=True):
        param.grad = grad
    torch.nn.utils.clip_grad_norm_(agents[0].parameters(), 0.5)
    clipped = net.agent_tensors([p.grad for p in net.params], 0)
    for got, param in zip(clipped, agents[0].parameters(), strict=True):
        torch.testing.assert_close(got, param.grad)


def test_update_of_one_agent_ignores_another_agents_gradients() -> None:
    """Agent 1's Adam step is the same whether agent 0's gradients are tiny or huge."""
    results = []
    for scale in (1.0, 1e8):
        net, _, _ = make_stacked(CARTPOLE, (0, 1))
        opt = stacked.StackedAdam(net)
        gen = torch.Generator().manual_seed(2)
        for _ in range(3):
            for p in net.params:
                p.grad.copy_(torch.randn(p.shape, generator=gen))  # views of net.flat.grad
                p.grad[0] *= scale
            stacked.clip_grad_norm_per_agent(net.params, 0.5)
            opt.step(torch.tensor([1e-3, 1e-3]))
        results.append(net.state_dict(1))
    for key in results[0]:
        assert torch.equal(results[0][key], results[1][key]), key


def test_stacked_adam_matches_torch_adam_and_per_agent_lr() -> None:
    net, agents, _ = make_stacked(CARTPOLE, (0, 1))
    adams = [
        torch.optim.Adam(a.parameters(), lr=lr, eps=1e-5)
        for a, lr in zip(agents, (1e-3, 0), strict=True)
    ]
    opt = stacked.StackedAdam(net)
    gen = torch.Generator().manual_seed(3)
    for _ in range(4):
        for p in net.params:
            p.grad.copy_(torch.randn(p.shape, generator=gen))  # views of net.flat.grad
        for i, (agent, adam) in enumerate(zip(agents, adams, strict=True)):
            for param, grad in zip(
                agent.parameters(), net.agent_tensors([p.grad for p in net.params], i), strict=True
            ):
                param.grad = grad
            adam.step()
        opt.step(torch.tensor([1e-3, 0.0]))  # lr 0 freezes agent 1
    for i, agent in enumerate(agents):
        for key, want in agent.state_dict().items():
            torch.testing.assert_close(net.state_dict(i)[key], want, rtol=1e-5, atol=1e-7)


def test_masked_adam_steps_only_active_agents_as_their_own_adam_would() -> None:
    net, agents, _ = make_stacked(CARTPOLE, (0, 1))
    adams = [torch.optim.Adam(a.parameters(), lr=1e-3, eps=1e-5) for a in agents]
    opt = stacked.StackedAdam(net)
    gen = torch.Generator().manual_seed(4)
    pattern = [(True, True), (True, False), (True, False), (True, True)]  # agent 1 sits out 2
    for active in pattern:
        for p in net.params:
            p.grad.copy_(torch.randn(p.shape, generator=gen))
        for i, (agent, adam) in enumerate(zip(agents, adams, strict=True)):
            if active[i]:
                grads = net.agent_tensors([p.grad for p in net.params], i)
                for param, grad in zip(agent.parameters(), grads, strict=True):
                    param.grad = grad
                adam.step()
        opt.step(torch.tensor([1e-3, 1e-3]), torch.tensor(active))
    assert opt.steps_of(0) == 4 and opt.steps_of(1) == 2
    for i, agent in enumerate(agents):
        for key, want in agent.state_dict().items():
            torch.testing.assert_close(net.state_dict(i)[key], want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "autograd"])
def test_target_kl_stops_each_agent_after_the_epoch_that_passed_it(fused: bool) -> None:
    """A target_kl of 1e-12 (the smallest kind: 0 is refused): every agent passes it in its
    first epoch, so 3 epochs give 1 epoch's weights; a target no agent reaches gives the plain
    3 epochs."""
    gen = torch.Generator().manual_seed(5)
    k, b = 2, 32
    batch = {
        "obs": torch.randn(k, b, 4, generator=gen),
        "actions": torch.randint(0, 2, (k, b), generator=gen),
        "logprobs": torch.full((k, b), math.log(0.5)),
        "advantages": torch.randn(k, b, generator=gen),
        "returns": torch.randn(k, b, generator=gen),
        "values": torch.zeros(k, b),
    }

    def weights_after(epochs: int, target_kl: float | None) -> list[dict[str, torch.Tensor]]:
        net, _, _ = make_stacked(CARTPOLE, (0, 1))
        cfg = ppo.default_config(
            CARTPOLE, update_epochs=epochs, num_minibatches=2, target_kl=target_kl,
            fused_update=fused,
        )  # fmt: skip
        torch.manual_seed(0)
        opt = stacked.StackedAdam(net)
        stats = stacked.update(net, opt, batch, torch.tensor([3e-3, 3e-3]), cfg)
        assert stats.isfinite().all()
        return [net.state_dict(i) for i in range(k)]

    one, stopped = weights_after(1, None), weights_after(3, 1e-12)
    three, unstopped = weights_after(3, None), weights_after(3, 1e9)
    for i in range(k):
        for key in one[i]:
            torch.testing.assert_close(stopped[i][key], one[i][key], rtol=1e-5, atol=1e-7)
            torch.testing.assert_close(unstopped[i][key], three[i][key], rtol=1e-5, atol=1e-7)
        assert not torch.allclose(three[i]["actor.0.weight"], one[i]["actor.0.weight"])


def test_same_seeds_give_identical_results() -> None:
    a = ms.train(tiny((4, 5)))
    b = ms.train(tiny((4, 5)))
    for pa, pb in zip(a.policies, b.policies, strict=True):
        for key, value in pa.agent.state_dict().items():
            assert torch.equal(value, pb.agent.state_dict()[key]), key


def test_parse_seeds_and_config_errors() -> None:
    assert ms.parse_seeds("0-3") == (0, 1, 2, 3)
    assert ms.parse_seeds("0,1,5") == (0, 1, 5)
    assert ms.parse_seeds("0-2,10") == (0, 1, 2, 10)
    for bad in ("", "a", "3-1", "1,1", "-2", str(2**63)):
        with pytest.raises(ValueError, match="seeds"):
            ms.parse_seeds(bad)
    with pytest.raises(ValueError, match=r"the range 5-3 goes down; .* from low to high \(3-5\)"):
        ms.parse_seeds("0,5-3")
    for too_many in ("0-10000000000", "0-5,0-20000"):  # refused before a list is built
        with pytest.raises(ValueError, match="more than 10,000 agents"):
            ms.parse_seeds(too_many)
    base = ppo.default_config(CARTPOLE)
    with pytest.raises(ValueError, match="distinct"):
        ms.MultiSeedConfig(ppo=base, seeds=(1, 1))
    with pytest.raises(ValueError, match="learning_rates"):
        ms.MultiSeedConfig(ppo=base, seeds=(1, 2), learning_rates=(1e-3,))
    with pytest.raises(ValueError, match=r"eval_episodes must be an integer >= 0, got 2\.5"):
        ms.MultiSeedConfig(ppo=base, seeds=(1,), eval_episodes=2.5)
    assert ms.env_seed((7,)) == 7 and ms.env_seed((0, 1)) != ms.env_seed((0, 2))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"learning_rates": (1e-3, math.inf)}, r"learning_rates needs one finite value > 0"),
        ({"learning_rates": (math.nan, 1e-3)}, r"learning_rates needs one finite value > 0"),
        ({"solved_return": math.nan}, r"solved_return must be a finite number, or None"),
        ({"solved_return": math.inf}, r"solved_return must be a finite number, or None"),
        ({"eval_episodes": 10**30}, r"eval_episodes must be at most 1,000,000"),
    ],
)
def test_config_refuses_values_without_meaning(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ms.MultiSeedConfig(ppo=ppo.default_config(CARTPOLE), seeds=(1, 2), **changes)


def test_more_snapshots_than_iterations_take_one_per_iteration(tmp_path: Path) -> None:
    cfg = tiny((0, 1), write_runs=True, runs_root=str(tmp_path))
    cfg = dataclasses.replace(cfg, ppo=replace_config(cfg.ppo, {"num_snapshots": 10**18}))
    result = ms.train(cfg)
    for run_dir in result.run_dirs:
        assert [step for step, _ in list_snapshots(run_dir)] == [0, 64, 128]


def test_grouped_running_statistics_equal_one_per_group() -> None:
    generator = torch.Generator().manual_seed(0)
    grouped = GroupedRunningMeanStd(3, (2,))
    singles = [RunningMeanStd((2,)) for _ in range(3)]
    for step in range(4):
        batch = (
            torch.randn(3 * 5, 2, generator=generator) * (step + 1) + torch.arange(15.0)[:, None]
        )
        grouped.update(batch)
        for g, rms in enumerate(singles):
            rms.update(batch[g * 5 : (g + 1) * 5])
    x = torch.randn(3 * 4, 2, generator=generator)
    for g, rms in enumerate(singles):
        torch.testing.assert_close(grouped.group(g).mean, rms.mean)
        torch.testing.assert_close(grouped.group(g).var, rms.var)
        torch.testing.assert_close(
            grouped.normalize(x)[g * 4 : (g + 1) * 4], rms.normalize(x[g * 4 : (g + 1) * 4])
        )
    with pytest.raises(ValueError, match="equal groups"):
        grouped.update(torch.zeros(7, 2))


def test_norm_obs_and_reward_are_per_agent_and_saved(tmp_path) -> None:
    pendulum = ppo.default_config(
        "sandbox/Pendulum-v1", **{**TINY, "write_run": True}, norm_obs=True, norm_reward=True
    )
    cfg = ms.MultiSeedConfig(
        ppo=pendulum, seeds=(0, 1), write_runs=True, runs_root=str(tmp_path), eval_episodes=2,
        progress=False,
    )  # fmt: skip
    result = ms.train(cfg)
    obs = torch.randn(8, 3) * 3
    means = []
    for k, run_dir in enumerate(result.run_dirs):
        raw = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)
        assert {"obs_rms", "return_rms"} <= raw.keys()
        assert raw["return_rms"]["returns"].shape == (TINY["num_envs"],)
        means.append(raw["obs_rms"]["mean"])
        # The file's policy applies the agent's own statistics: the trained policy's actions.
        loaded = ppo.load_policy(run_dir / "checkpoints" / "latest.pt")  # on the CPU
        trained = result.policies[k]  # on the training device ("auto": CUDA where present)
        torch.testing.assert_close(loaded.act(obs), trained.act(obs.to(trained.device)).cpu())
        assert result.policies[k].obs_rms is not None
    assert not torch.equal(means[0], means[1])  # each agent saw its own rows


def test_per_agent_learning_rates_are_used() -> None:
    result = ms.train(tiny((0, 1), learning_rates=(1e-3, 2e-3)))
    assert [row["learning_rate"] for row in result.per_seed] == [1e-3, 2e-3]
    # anneal_lr: the last iteration (2 of 2) runs at half the initial rate.
    assert result.per_seed[1]["charts/learning_rate"] == pytest.approx(1e-3)


def test_cli_train_seeds(tmp_path, monkeypatch, capsys) -> None:
    from rl.cli import main

    monkeypatch.chdir(tmp_path)
    argv = [
        "train", "--seeds", "0-1", "--env", CARTPOLE, "--total-timesteps", "128", "--num-envs",
        "4", "--no-progress", "--set", "num_steps=16", "--set", "eval_episodes=4",
    ]  # fmt: skip
    assert main(argv) == 0
    runs = tmp_path / "runs"
    assert len([p for p in runs.iterdir() if p.is_dir() and "__ppo__" in p.name]) == 2
    assert len(list(runs.glob("*.json"))) == 1
    assert "per seed" in capsys.readouterr().out
    # A seed's eval.json is the group's evaluation, under the group's shared seed: rl eval of
    # the seed's folder with its own seed prints its result and keeps that file.
    seed_run = next(p for p in runs.iterdir() if "__ppo__0__" in p.name)
    before = (seed_run / "eval.json").read_text()
    assert main(["eval", str(seed_run), "--episodes", "5"]) == 0
    assert (seed_run / "eval.json").read_text() == before
    shared = ms.env_seed((0, 1))
    assert f"eval.json holds an evaluation with seed {shared}, this used 0" in (
        capsys.readouterr().out
    )
    for extra, message in (
        (["--algo", "dqn"], "PPO only"),
        (["--seed", "3"], "--seed"),
        (["--resume", str(runs)], "--resume"),
    ):
        assert main([*argv, *extra]) == 2
        assert message in capsys.readouterr().err
    assert main([*argv[:1], "--seeds", "3-1", *argv[3:]]) == 2
    assert "the range 3-1 goes down" in capsys.readouterr().err
    # --run-dir: the folder the group and its seeds' runs go in.
    assert main([*argv, "--run-dir", "lesson/seeds"]) == 0
    assert "→ lesson/seeds/" in capsys.readouterr().out
    lesson = tmp_path / "lesson" / "seeds"
    assert len([p for p in lesson.iterdir() if p.is_dir() and "__ppo__" in p.name]) == 2
    assert len([p for p in lesson.iterdir() if "__ppo-seeds__" in p.name and p.is_dir()]) == 1
    (tmp_path / "afile").write_text("")
    assert main([*argv, "--run-dir", "afile"]) == 2
    assert "the folder for the seeds' runs afile is a file" in capsys.readouterr().err


@pytest.mark.slow
def test_eight_seeds_solve_cartpole() -> None:
    """The deterministic policies of 8 seeds solve CartPole (mean >= 475 over 100 episodes).

    PPO's CartPole preset (100k steps, stop at a training average of 495) is not reliable on
    every seed: measured with seeds 0-7 trained together, seven score 500 and one 453 — the
    preset's reliability, not this module's (each agent learns and stops by agents.ppo's
    rules) — so the bar is 7 of 8 and a mean over seeds >= 475.
    """
    base = ppo.default_config(CARTPOLE, progress=False, write_run=False)
    cfg = ms.MultiSeedConfig(
        ppo=base, seeds=tuple(range(8)), write_runs=False, eval_episodes=100, progress=False,
        solved_return=475.0,
    )  # fmt: skip
    result = ms.train(cfg)
    returns = [row["eval_mean_return"] for row in result.per_seed]
    assert sum(row["solved"] for row in result.per_seed) >= 7, returns
    assert result.summary["eval_mean_return"] >= 475.0, returns


def test_each_agents_check_passes_at_the_configured_confidence(monkeypatch) -> None:
    """The same check (100 episodes averaging 6 with a spread) stops agents deciding on its
    mean and not agents asking 95 %."""
    spread = EvalResult(CARTPOLE, [26.0] * 95 + [-374.0] * 5, [1] * 100)
    monkeypatch.setattr(ms._Loop, "check", lambda loop, passed, seed: [spread] * len(passed))
    base = ppo.default_config(
        CARTPOLE, **{**FILLS, "total_timesteps": 4 * ITER}, target_return=1.0, target_window=1,
        target_check_episodes=100,
    )  # fmt: skip
    steps = {}
    for confidence in (0.5, 0.95):
        cfg = ms.MultiSeedConfig(
            ppo=replace_config(base, {"target_confidence": confidence}), seeds=(1, 2),
            write_runs=False, progress=False, check_gap=1,
        )  # fmt: skip
        steps[confidence] = [row["reached_target_step"] for row in ms.train(cfg).per_seed]
    assert steps == {0.5: [ITER, ITER], 0.95: [None, None]}


def test_target_stop_needs_each_agents_deterministic_check(monkeypatch) -> None:
    """A target of 1 passes every agent's window at once; the stacked check then decides per
    agent: the agent whose check fails keeps training to the end."""
    base = ppo.default_config(
        CARTPOLE, **{**FILLS, "total_timesteps": 4 * ITER}, target_return=1.0, target_window=1,
        target_check_episodes=2,
    )  # fmt: skip
    cfg = ms.MultiSeedConfig(ppo=base, seeds=(1, 2), write_runs=False, progress=False, check_gap=1)
    assert [row["reached_target_step"] for row in ms.train(cfg).per_seed] == [ITER, ITER]
    real, real_subset, checked = ms.evaluate_stacked, ms.StackedActorCritic.subset, []

    def subset(net, agents):
        sub = real_subset(net, agents)
        sub.agents = agents  # which of the K the check evaluates
        return sub

    def second_fails(net, *args, **kwargs):
        results = real(net, *args, **kwargs)
        if not hasattr(net, "agents"):
            return results  # the final evaluation of every agent, not a check
        checked.append(net.agents)
        if 1 in net.agents:
            failing = results[net.agents.index(1)]
            failing.returns = [0.0] * len(failing.returns)
        return results

    monkeypatch.setattr(ms.StackedActorCritic, "subset", subset)
    monkeypatch.setattr(ms, "evaluate_stacked", second_fails)
    result = ms.train(cfg)
    assert [row["reached_target_step"] for row in result.per_seed] == [ITER, None]
    # Checked together at first; then only the agent still training (agent 0 stopped).
    assert checked[0] == [0, 1] and all(agents == [1] for agents in checked[1:]), checked
    assert result.summary["target_checks"] == len(checked) == 4  # 4 iterations
    assert result.summary["target_checked_agents"] == 5
    assert result.summary["target_check_seconds"] > 0


def test_an_agent_that_stopped_keeps_the_observation_statistics_it_stopped_with(
    tmp_path, monkeypatch
) -> None:
    """A stopped agent's rows go on stepping beside the others; its policy (returned, saved and
    evaluated) must still normalise as it did at its stop, as ``agents.ppo.train``'s would."""
    base = ppo.default_config(
        CARTPOLE, **{**FILLS, "total_timesteps": 4 * ITER, "write_run": True}, norm_obs=True,
        target_return=1.0, target_window=1, target_check_episodes=2,
    )  # fmt: skip
    cfg = ms.MultiSeedConfig(
        ppo=base, seeds=(1, 2), runs_root=str(tmp_path), progress=False, check_gap=1,
        eval_episodes=0,
    )  # fmt: skip
    # Agent 1 never passes its check: it trains to the end beside the stopped agent 0.
    monkeypatch.setattr(ms._Loop, "check", _failing_check(ms._Loop.check, failing={1}))
    result = ms.train(cfg)
    assert [row["reached_target_step"] for row in result.per_seed] == [ITER, None]
    latest = [
        torch.load(d / "checkpoints" / "latest.pt", weights_only=True) for d in result.run_dirs
    ]
    # As agents.ppo's: the stopped agent's checkpoint says so (rl watch, a resume of its folder).
    assert latest[0]["target_reached"] >= 1.0 and "target_reached" not in latest[1]
    saved = [ckpt["obs_rms"] for ckpt in latest]
    stopped, trained_on = (result.policies[k].obs_rms for k in (0, 1))
    for key in ("mean", "var", "count"):
        torch.testing.assert_close(getattr(stopped, key).cpu(), saved[0][key])
    steps = ITER  # each observation counted once
    assert float(stopped.count) == pytest.approx(1 * steps, abs=1e-3)
    assert float(trained_on.count) == pytest.approx(4 * steps, abs=1e-3)


FAILED = EvalResult("sandbox/CartPole-v1", [-math.inf], [1])  # a check that fails at any bar


def _failing_check(real_check, failing: set[int]):
    """``_Loop.check`` with the agents in ``failing`` always failing."""

    def check(loop, passed, seed):
        checks = real_check(loop, passed, seed)
        return [FAILED if k in failing else c for k, c in zip(passed, checks, strict=True)]

    return check


def _check_iterations(monkeypatch, fails) -> list[tuple[int, list[int]]]:
    """Record (iteration, agents) of each check; ``fails(iteration, agent)``: that check fails."""
    real_check, checks = ms._Loop.check, []

    def check(loop, passed, seed):
        checks.append((loop.iteration, list(passed)))
        results = real_check(loop, passed, seed)
        return [
            FAILED if fails(loop.iteration, k) else r for k, r in zip(passed, results, strict=True)
        ]

    monkeypatch.setattr(ms._Loop, "check", check)
    return checks


def test_checks_wait_check_gap_iterations_and_take_every_waiting_agent(monkeypatch) -> None:
    """Every window passes at every iteration (target 1); with a gap of 3, checks run at
    iterations 1, 4 and 7 only, each of every agent not yet stopped (each of those failed a
    check within the gap, so none runs at once)."""
    base = ppo.default_config(
        CARTPOLE, **{**FILLS, "total_timesteps": 7 * ITER}, target_return=1.0, target_window=1,
        target_check_episodes=2,
    )  # fmt: skip
    cfg = ms.MultiSeedConfig(ppo=base, seeds=(1, 2), write_runs=False, progress=False, check_gap=3)
    # Agent 0 fails its first check only; agent 1 fails every check.
    checks = _check_iterations(monkeypatch, lambda it, k: k == 1 or it == 1)
    result = ms.train(cfg)
    assert checks == [(1, [0, 1]), (4, [0, 1]), (7, [1])]
    assert [row["reached_target_step"] for row in result.per_seed] == [4 * ITER, None]
    assert result.summary["target_checks"] == 3
    assert result.summary["target_checked_agents"] == 5
    assert result.summary["target_check_gap"] == 3
    default = ms.train(dataclasses.replace(cfg, check_gap=None))
    assert default.summary["target_check_gap"] == 1  # on the CPU: a check at every iteration
    assert [it for it, _ in checks[3:]] == list(range(1, 8))


class _Crash(Exception):
    pass


def _train_until_killed(monkeypatch, cfg: ms.MultiSeedConfig) -> None:
    """Train ``cfg`` and die just after its iteration-2 group checkpoint."""
    real_save = ms._Loop.save_group

    def save_then_crash(self) -> None:
        real_save(self)
        if self.iteration == 2:
            raise _Crash

    monkeypatch.setattr(ms._Loop, "save_group", save_then_crash)
    try:
        with pytest.raises(_Crash):
            ms.train(cfg)
    finally:
        monkeypatch.setattr(ms._Loop, "save_group", real_save)


def test_resume_keeps_the_check_schedule(tmp_path, monkeypatch) -> None:
    """Killed after iteration 2 (checked at 1, gap 3), the resumed run checks at 4 (and at the
    last, 5), as the uninterrupted run does, not at 3."""
    base = ppo.default_config(
        CARTPOLE, **{**FILLS, "total_timesteps": 5 * ITER}, target_return=1.0, target_window=1,
        target_check_episodes=2, checkpoint_every=2,
    )  # fmt: skip

    def config(root) -> ms.MultiSeedConfig:
        return ms.MultiSeedConfig(
            ppo=base, seeds=(3, 5), runs_root=str(root), progress=False, check_gap=3
        )

    checks = _check_iterations(monkeypatch, lambda it, k: True)
    whole = ms.train(config(tmp_path / "whole"))
    assert [it for it, _ in checks] == [1, 4, 5]  # 5: the last iteration
    checks.clear()
    _train_until_killed(monkeypatch, config(tmp_path / "crashed"))
    (group,) = (tmp_path / "crashed").glob("*ppo-seeds*[!n]")
    # A different gap asked for on resume: the group's own is kept.
    resumed = ms.train(dataclasses.replace(config(tmp_path / "crashed"), check_gap=1), resume=group)
    assert [it for it, _ in checks] == [1, 4, 5]  # 5: the last iteration
    for key in ("target_checks", "target_checked_agents"):  # counted over the whole run
        assert resumed.summary[key] == whole.summary[key] == (3 if key == "target_checks" else 6)


def test_the_last_iteration_checks_whoever_waits(monkeypatch) -> None:
    """Windows that pass within the gap of the run's end are still checked, at its end."""
    base = ppo.default_config(
        CARTPOLE, **{**FILLS, "total_timesteps": 2 * ITER}, target_return=1.0, target_window=1,
        target_check_episodes=2,
    )  # fmt: skip
    cfg = ms.MultiSeedConfig(ppo=base, seeds=(1, 2), write_runs=False, progress=False, check_gap=3)
    checks = _check_iterations(monkeypatch, lambda it, k: it == 1)
    result = ms.train(cfg)
    assert checks == [(1, [0, 1]), (2, [0, 1])]
    assert [row["reached_target_step"] for row in result.per_seed] == [2 * ITER, 2 * ITER]


def test_a_check_that_can_end_the_run_runs_at_once() -> None:
    """Within the gap, a check runs only when the waiting agents are all the agents still
    training and none of them failed a check within the gap."""
    loop = SimpleNamespace(
        iteration=12, last_check=10, check_gap=8, active=[True, True, True],
        failed_check=[None, None, None], base=SimpleNamespace(num_iterations=100),
    )  # fmt: skip
    due = ms._Loop.check_due
    assert not due(loop, [0])  # others still training: the check waits
    assert due(loop, [0, 1, 2])
    loop.failed_check[2] = 10
    assert not due(loop, [0, 1, 2])  # agent 2 failed 2 iterations ago
    loop.failed_check[2] = 4
    assert due(loop, [0, 1, 2])  # 8 iterations ago: the gap has passed for it
    loop.iteration = 18
    assert due(loop, [0])  # the gap has passed
    loop.iteration, loop.active = 12, [False, True, True]
    loop.failed_check[2] = None
    assert due(loop, [1, 2])
    loop.last_check = None
    assert due(loop, [1])  # the first check


@pytest.mark.parametrize("gap", [0, -1, 1.5, True, "2"])
def test_check_gap_must_be_a_whole_number_of_iterations(gap) -> None:
    with pytest.raises(ValueError, match="check_gap must be an integer"):
        tiny((0, 1), check_gap=gap)


def test_a_kept_check_of_every_agent_equals_a_fresh_evaluation(monkeypatch) -> None:
    """The check kept for the run (on CUDA: every agent in one Evaluator, replayed from a graph
    unless cuda_graphs is off; forced here on the CPU, where it steps eagerly) gives each passing agent the
    mean return that a fresh evaluation of all the agents' current weights gives it."""
    base = ppo.default_config(
        "sandbox/Pendulum-v1", **{**TINY, "num_steps": 64, "total_timesteps": 64 * 4 * 6},
        target_return=-1e9, target_window=1, target_check_episodes=2,
    )  # fmt: skip
    cfg = ms.MultiSeedConfig(
        ppo=base, seeds=(1, 2, 3), write_runs=False, progress=False, check_gap=1
    )
    real_check, evaluators = ms._Loop.check, []

    def kept(loop, passed, seed):
        loop.keep_check = True
        loop.net.subset = None  # the kept check evaluates every agent, no subset
        checks = real_check(loop, passed, seed)
        evaluators.append(loop.check_evaluator)
        fresh = stacked.evaluate_stacked(
            stacked.StackedActorCritic.subset(loop.net, list(range(3))), base, 2, seed,
            loop.next_obs.device, loop.spaces, obs_rms=loop.obs_rms,
        )  # fmt: skip
        assert [c.returns for c in checks] == [fresh[k].returns for k in passed]
        return [FAILED] * len(passed)  # keep training: checks with new weights each time

    monkeypatch.setattr(ms._Loop, "check", kept)
    result = ms.train(cfg)
    assert result.summary["target_checks"] == len(evaluators) == 3
    assert all(e is evaluators[0] for e in evaluators)


def test_resume_equals_uninterrupted_run_bitwise(tmp_path, monkeypatch) -> None:
    """Killed after its iteration-2 group checkpoint, a resumed run ends where an
    uninterrupted one does: every agent's weights, the shared env and random streams."""
    base = ppo.default_config(
        CARTPOLE, **{**TINY, "total_timesteps": 4 * 64}, checkpoint_every=2, norm_obs=True,
        norm_reward=True,
    )  # fmt: skip

    def config(root) -> ms.MultiSeedConfig:
        return ms.MultiSeedConfig(ppo=base, seeds=(3, 5), runs_root=str(root), progress=False)

    whole = ms.train(config(tmp_path / "whole"))
    _train_until_killed(monkeypatch, config(tmp_path / "crashed"))
    # The runs folder moves (another machine, another working directory): still resumable.
    (tmp_path / "crashed").rename(tmp_path / "moved")
    (group,) = (tmp_path / "moved").glob("*ppo-seeds*[!n]")  # the folder, not its .json
    assert ms.load_group_checkpoint(group)["iteration"] == 2
    resumed = ms.train(config(tmp_path / "crashed"), resume=group)
    assert [r["global_step"] for r in resumed.per_seed] == [256, 256]
    for mine, theirs in zip(resumed.policies, whole.policies, strict=True):
        a, b = mine.agent.state_dict(), theirs.agent.state_dict()
        assert all(torch.equal(a[key], b[key]) for key in a)
    assert {p.parent for p in resumed.run_dirs} == {tmp_path / "moved"}
    assert not (tmp_path / "crashed").exists()
    with pytest.raises(ValueError, match="learning_rate"):
        ms.train(
            ms.MultiSeedConfig(ppo=replace_config(base, {"learning_rate": 1.0}), seeds=(3, 5)),
            resume=group,
        )
    with pytest.raises(ValueError, match="seeds"):
        ms.train(ms.MultiSeedConfig(ppo=base, seeds=(3, 4)), resume=group)
    fewer = replace_config(base, {"total_timesteps": 100})  # below the 256 trained
    with pytest.raises(ValueError, match="each seed has trained 256 steps, more than total_t"):
        ms.train(ms.MultiSeedConfig(ppo=fewer, seeds=(3, 5)), resume=group)
    config_json = (resumed.run_dirs[0] / "config.json").read_text()
    assert '"total_timesteps": 256' in config_json  # nothing rewritten by the refused resume


def test_a_group_resume_refuses_to_overwrite_a_seed_continued_alone(tmp_path) -> None:
    base = ppo.default_config(CARTPOLE, **{**TINY, "total_timesteps": 2 * 64, "write_run": True})
    cfg = ms.MultiSeedConfig(ppo=base, seeds=(3, 5), runs_root=str(tmp_path), progress=False)
    first = ms.train(cfg)
    (group,) = tmp_path.glob("*ppo-seeds*[!n]")
    longer = replace_config(base, {"total_timesteps": 4 * 64})
    # Seed 3 continued alone: its folder is ahead of the group's checkpoint for it.
    ppo.train(replace_config(longer, {"seed": 3}), resume=first.run_dirs[0])
    with pytest.raises(ValueError, match=r"seed 3's run .* was continued on its own since \(to"):
        ms.train(ms.MultiSeedConfig(ppo=longer, seeds=(3, 5), progress=False), resume=group)
    latest = first.run_dirs[0] / "checkpoints" / "latest.pt"
    assert torch.load(latest, weights_only=True)["global_step"] == 4 * 64  # untouched


def test_cli_resumes_a_group(tmp_path, monkeypatch, capsys) -> None:
    from rl.cli import main

    monkeypatch.chdir(tmp_path)
    argv = ["train", "--seeds", "1-2", "--env", CARTPOLE, "--num-envs", "4",
            "--total-timesteps", "128", "--no-progress", "--set", "num_steps=16",
            "--set", "eval_episodes=2"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    group = out.split("group folder (for --resume): ")[1].split()[0]
    assert main(["train", "--resume", group, "--total-timesteps", "192", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Resuming 2 PPO agents" in out and "seeds 1,2" in out
    assert ms.load_group_checkpoint(group)["iteration"] == 3
    assert main(["train", "--resume", group, "--set", "learning_rate=1"]) == 2
    captured = capsys.readouterr()  # refused before the header says it resumes
    assert "Resuming" not in captured.out
    assert f"cannot resume {group}: a group resumes with its own learning_rate" in captured.err
    assert main(["train", "--resume", group, "--resume-if-exists"]) == 2
    assert "drop --algo, --run-dir, --distributed and --resume-if-exists" in (
        capsys.readouterr().err
    )
    early = tmp_path / "runs" / "x__ppo-seeds__1-2_K2__t"  # killed before its first save
    early.mkdir(parents=True)
    assert main(["train", "--resume", str(early)]) == 2
    assert "group folder whose training stopped before its first checkpoint" in (
        capsys.readouterr().err
    )
    assert main(["eval", group]) == 2
    assert "is a multi-seed group folder" in capsys.readouterr().err
    assert main(["eval", f"{group}/multiseed.pt"]) == 2
    assert "group checkpoint of an rl train --seeds run" in capsys.readouterr().err


def test_cli_reports_a_diverged_or_interrupted_group_as_a_single_run(
    tmp_path, monkeypatch, capsys
) -> None:
    from rl.cli import main
    from rl.runs import TrainingDiverged

    monkeypatch.chdir(tmp_path)
    real_train = ms.train
    argv = ["train", "--seeds", "1-2", "--env", CARTPOLE, "--num-envs", "4",
            "--total-timesteps", "64", "--no-progress", "--set", "num_steps=16",
            "--set", "eval_episodes=0"]  # fmt: skip
    assert main(argv) == 0
    group = capsys.readouterr().out.split("group folder (for --resume): ")[1].split()[0]

    def diverge(cfg, resume=None):
        raise TrainingDiverged("multi-seed PPO diverged at iteration 3 for seed(s) [2]")

    monkeypatch.setattr(ms, "train", diverge)
    for args in (argv, ["train", "--resume", group, "--total-timesteps", "128"]):
        assert main(args) == 1
        captured = capsys.readouterr()
        assert "diverged at iteration 3" in captured.err
        assert "diverged" not in captured.out

    def interrupt(self):  # a second Ctrl-C, inside the training loop
        raise KeyboardInterrupt

    monkeypatch.setattr(ms, "train", real_train)
    monkeypatch.setattr(ms._Loop, "run", interrupt)
    assert main(["train", "--resume", group, "--total-timesteps", "128"]) == 130
    assert f"to continue: rl train --resume {group}" in capsys.readouterr().err
    # A new run names its own group, even beside a newer-named one (another training's).
    other = tmp_path / "runs" / "sandbox-CartPole-v1__ppo-seeds__1-2_K2__99999999-999999"
    other.mkdir()
    (other / "multiseed.pt").write_bytes(b"")
    assert main(argv) == 130
    hint = capsys.readouterr().err.split("to continue: rl train --resume ")[1].split()[0]
    assert hint != group and "99999999" not in hint and ms.is_group(hint)

    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(ms, "stop_requested", lambda: True)  # Ctrl-C: stop after iteration 1
    two_iterations = [("128" if word == "64" else word) for word in argv]
    assert main(two_iterations) == 130  # summarised and checkpointed, not the run asked for
    assert "stopped at your request (Ctrl-C) after iteration 1" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seeds", "x"], "cannot read seeds 'x'"),
        (["--set", "bogus=1"], "Config has no field 'bogus'"),
        (["--set", "num_envs=abc"], "num_envs must be an integer"),
    ],
)
def test_module_main_reports_bad_input_in_one_line(argv, message, capsys) -> None:
    assert ms.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m agents.multiseed: error: ") and message in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_a_group_stopped_by_ctrl_c_checkpoints_every_seed_at_the_stop(
    tmp_path, monkeypatch
) -> None:
    base = ppo.default_config(
        CARTPOLE, **{**TINY, "total_timesteps": 6 * 64}, checkpoint_every=1000, num_snapshots=1
    )
    real = ppo.IterationValues.metrics  # no episode returns: no new best to save either
    monkeypatch.setattr(ppo.IterationValues, "metrics", lambda self, lr: ({}, real(self, lr)[1]))
    asked = iter([False, False, True])  # Ctrl-C during the third iteration
    monkeypatch.setattr(ms, "stop_requested", lambda: next(asked, True))
    result = ms.train(
        ms.MultiSeedConfig(ppo=base, seeds=(3, 5, 7), runs_root=str(tmp_path), progress=False)
    )
    assert result.summary["stopped_on_request"] and result.summary["iterations"] == 3
    for run_dir in result.run_dirs:  # each seed's latest.pt is the group's iteration 3
        assert load_checkpoint(run_dir / "checkpoints" / "latest.pt")["global_step"] == 3 * 64
