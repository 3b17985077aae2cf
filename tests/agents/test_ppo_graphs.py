"""PPO replayed from CUDA graphs (``Config.cuda_graphs``) against the same run stepped eagerly.

The GPU tests are ``gpu``-marked (skipped without CUDA). The eager side keeps every setting a
graphed run uses (a capturable Adam with a tensor learning rate, the env's on-device autoreset
count) and only never captures, so the two must agree bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium
import pytest
import torch

from agents import multiseed as ms
from agents import ppo, ppo_graphs, stacked
from envs.cartpole import CartPoleVectorEnv
from rl import evaluation
from rl.checkpoint import load_checkpoint
from rl.evaluation import EvalResult
from rl.vector import make_vector_env

QUIET = {"eval_episodes": 0, "progress": False, "write_run": False}
GPU = pytest.mark.gpu


def small(env_id: str, **overrides: Any) -> ppo.Config:
    base = {"num_envs": 16, "num_steps": 8, "num_minibatches": 2, "update_epochs": 2}
    cfg = ppo.default_config(env_id, **QUIET, **base, target_return=None)
    return ppo.replace_config(cfg, {"total_timesteps": 16 * 8 * 6, "device": "cuda", **overrides})


def weights(result: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in result.policy.agent.state_dict().items()}


def train_eagerly(cfg: ppo.Config, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as patch:
        patch.setattr(ppo_graphs.IterationGraphs, "warmup_iterations", 10**9)
        return ppo.train(cfg)


@GPU
@pytest.mark.parametrize(
    ("env_id", "overrides"),
    [
        ("sandbox/CartPole-v1", {}),
        ("sandbox/DogTraining-v0", {}),
        # Gaussian actions, observation and reward normalisation, value clipping.
        ("sandbox/Pendulum-v1", {"clip_vloss": True}),
    ],
)
def test_graphed_iterations_equal_eager_ones_bit_for_bit(
    env_id: str, overrides: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = small(env_id, **overrides)
    graphed = ppo.train(cfg)
    # Captured in the second iteration, or the third where the first built constants lazily.
    assert graphed.metrics["graphed_iterations"] >= cfg.num_iterations - 2
    eager = train_eagerly(cfg, monkeypatch)
    assert eager.metrics["graphed_iterations"] == 0
    for name, value in weights(graphed).items():
        assert torch.equal(value, weights(eager)[name]), name
    for key in ("losses/policy_loss", "losses/value_loss", "charts/episodic_return"):
        if key in eager.metrics:
            assert graphed.metrics[key] == eager.metrics[key], key


@GPU
def test_graphed_run_is_close_to_a_plain_eager_one() -> None:
    # Without the graph settings (float learning rate, host-side Adam bias correction) the
    # numbers differ only by float rounding.
    cfg = small("sandbox/CartPole-v1", total_timesteps=16 * 8 * 3)
    graphed, plain = ppo.train(cfg), ppo.train(ppo.replace_config(cfg, {"cuda_graphs": False}))
    assert "graphed_iterations" not in plain.metrics
    for name, value in weights(graphed).items():
        torch.testing.assert_close(value, weights(plain)[name], rtol=1e-4, atol=1e-5)


@GPU
def test_graphed_run_checkpoints_load_on_the_cpu(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = ppo.replace_config(
        small("sandbox/CartPole-v1"), {"write_run": True, "run_dir": str(run_dir)}
    )
    result = ppo.train(cfg)
    ckpt = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    group = ckpt["optimizer"]["param_groups"][0]
    assert isinstance(group["lr"], float) and group["capturable"] is False
    obs = torch.randn(64, 4)
    policy = ppo.load_policy(ckpt, device="cpu")
    assert torch.equal(policy.act(obs), result.policy.act(obs.cuda()).cpu())


@GPU
def test_resuming_on_cuda_replays_graphs_again(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = ppo.replace_config(
        small("sandbox/CartPole-v1"), {"write_run": True, "run_dir": str(run_dir)}
    )
    ppo.train(cfg)
    longer = ppo.replace_config(cfg, {"total_timesteps": cfg.total_timesteps * 2})
    resumed = ppo.train(longer, resume=run_dir)
    assert resumed.global_step == longer.total_timesteps
    assert resumed.metrics["graphed_iterations"] >= cfg.num_iterations - 2


@GPU
@pytest.mark.parametrize("env_id", ["sandbox/CartPole-v1", "sandbox/DogTraining-v0"])
def test_env_steps_replayed_from_a_graph_continue_like_eager_steps(env_id: str) -> None:
    steps, replays = 7, 3
    envs = [make_vector_env(env_id, 64, "cuda") for _ in range(2)]
    for env in envs:
        env.unwrapped.capturable = True
        env.reset(seed=3)
    actions = [envs[0].action_space.sample() for _ in range(steps)]
    actions = [torch.as_tensor(a, device="cuda") for a in actions]
    eager_obs = []
    for _ in range(replays):
        for a in actions:
            eager_obs.append(envs[0].step(a)[0].clone())
    core = envs[1].unwrapped
    envs[1].step(actions[0])  # warm-up, then rewind to the same start
    envs[1].reset(seed=3)
    carry = [t.clone() for t in core.carried()]
    core.load_carried(carry)
    out = torch.empty_like(eager_obs[0])
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        seen = [envs[1].step(a)[0] for a in actions]
        out.copy_(seen[-1])
        for target, source in zip(carry, core.carried(), strict=True):
            if target is not source:
                target.copy_(source)
    core.load_carried(carry)
    for r in range(replays):
        graph.replay()
        assert torch.equal(out, eager_obs[(r + 1) * steps - 1]), r
    # The host's step count lags a replayed graph; the saved one comes from the device.
    assert core.state_dict()["rng_step"] == envs[0].unwrapped.state_dict()["rng_step"]


def test_unsupported_runs_say_why() -> None:
    cfg = ppo.default_config("sandbox/CartPole-v1", **QUIET)
    env = make_vector_env("sandbox/CartPole-v1", 2, "cpu")
    agent = ppo.ActorCritic(
        {"obs_shape": [4], "action_kind": "discrete", "action_n": 2}, (8,), "tanh"
    )
    assert "CUDA" in ppo_graphs.unsupported(cfg, agent, env, torch.device("cpu"))
    cuda = torch.device("cuda")
    kl = ppo.replace_config(cfg, {"target_kl": 0.02})
    assert "target_kl" in ppo_graphs.unsupported(kl, agent, env, cuda)
    fused = ppo.replace_config(cfg, {"fused_update": False})
    assert "fused" in ppo_graphs.unsupported(fused, agent, env, cuda)
    gym_env = make_vector_env("CartPole-v1", 2, "cpu")
    assert "sandbox" in ppo_graphs.unsupported(cfg, agent, gym_env, cuda)
    assert ppo_graphs.unsupported(cfg, agent, env, cuda) is None


def test_checkpoints_keep_a_float_learning_rate_and_no_capturable_flag() -> None:
    param = torch.nn.Parameter(torch.zeros(3))
    optimizer = torch.optim.Adam([param], lr=1e-3)
    optimizer.param_groups[0]["lr"] = torch.tensor(5e-4)
    optimizer.param_groups[0]["capturable"] = True
    saved = ppo_graphs.portable_optimizer_state(optimizer)
    assert saved["param_groups"][0]["lr"] == pytest.approx(5e-4)
    assert saved["param_groups"][0]["capturable"] is False
    assert isinstance(optimizer.param_groups[0]["lr"], torch.Tensor)  # the live one unchanged


@GPU
@pytest.mark.parametrize("env_id", ["sandbox/CartPole-v1", "sandbox/DogTraining-v0"])
def test_evaluation_replayed_from_a_graph_equals_eager(
    env_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = make_vector_env(env_id, 1, "cpu")
    obs_dim = probe.single_observation_space.shape[0]
    weights_ = torch.randn(obs_dim, int(probe.single_action_space.n), device="cuda")
    captured = []

    def spy(self: evaluation.Evaluator, obs: torch.Tensor) -> torch.Tensor:
        out = capture(self, obs)
        captured.append(self._replay is not None)
        return out

    capture = evaluation.Evaluator._capture
    monkeypatch.setattr(evaluation.Evaluator, "_capture", spy)

    def act(obs: torch.Tensor) -> torch.Tensor:
        if env_id == "sandbox/CartPole-v1":  # a balancer: episodes past the first replays
            return (obs[:, 2] + 0.5 * obs[:, 3] > 0).long()
        return (obs.flatten(1) @ weights_).argmax(-1)

    graphed = evaluation.evaluate(act, env_id, episodes=50, device="cuda", seed=5)
    assert captured == [True]
    eager = evaluation.evaluate(act, env_id, episodes=50, device="cuda", seed=5, cuda_graphs=False)
    assert captured == [True]
    assert graphed.returns == eager.returns and graphed.lengths == eager.lengths
    assert graphed.successes == eager.successes and graphed.attempts == eager.attempts


@GPU
def test_a_kept_evaluator_replays_one_graph_for_every_check() -> None:
    """The stop rule's evaluator: one capture, then later calls only replay, reading weights
    changed in place between calls; a watched tensor that moves gets a new graph."""
    torch.manual_seed(0)
    weights_ = torch.randn(4, 2, device="cuda")

    def act(obs: torch.Tensor) -> torch.Tensor:
        push = (obs[:, 2] + 0.5 * obs[:, 3]) * 50  # a balancer, so that episodes run long
        return (obs @ weights_ + torch.stack([-push, push], 1)).argmax(-1)

    kept = evaluation.Evaluator(
        act, "sandbox/CartPole-v1", episodes=30, device="cuda", watch=lambda: [weights_]
    )
    for seed in (3, 4, 5):
        graphed = kept(seed)
        eager = evaluation.evaluate(
            act, "sandbox/CartPole-v1", episodes=30, device="cuda", seed=seed, cuda_graphs=False
        )
        assert graphed.returns == eager.returns and graphed.lengths == eager.lengths
        weights_.mul_(-1.5)  # in place: the graph reads the new values
    assert kept._replay is not None and kept.replays > 0
    first = kept._replay
    weights_ = weights_.clone()  # moved: act now reads other memory
    assert (
        kept(6).returns
        == evaluation.evaluate(
            act, "sandbox/CartPole-v1", episodes=30, device="cuda", seed=6, cuda_graphs=False
        ).returns
    )
    assert kept._replay is not None and kept._replay is not first
    kept.close()


@GPU
def test_evaluation_of_an_act_that_syncs_runs_eagerly(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: Any) -> Any:
        raise AssertionError("an act that reads values on the host must not be captured")

    monkeypatch.setattr(evaluation.Evaluator, "_capture", never)

    def act(obs: torch.Tensor) -> torch.Tensor:
        if bool((obs[:, 2] > 0).any()):  # a host read: cannot be captured
            return (obs[:, 2] > 0).long()
        return torch.zeros(obs.shape[0], dtype=torch.long, device=obs.device)

    graphed = evaluation.evaluate(act, "sandbox/CartPole-v1", episodes=20, device="cuda", seed=1)
    eager = evaluation.evaluate(
        act, "sandbox/CartPole-v1", episodes=20, device="cuda", seed=1, cuda_graphs=False
    )
    assert graphed.returns == eager.returns
    torch.randint(6, (64,), device="cuda")  # the CUDA generator still works


class RebindingCartPole(CartPoleVectorEnv):
    """A custom env that keeps per-step state outside ``state`` (replaced every step)."""

    def _transition(self, state: torch.Tensor, actions: torch.Tensor) -> Any:
        self.pushes = getattr(self, "pushes", 0) + actions.sum()
        return super()._transition(state, actions)


class SyncingCartPole(CartPoleVectorEnv):
    """A custom env whose step reads a value on the host."""

    def _transition(self, state: torch.Tensor, actions: torch.Tensor) -> Any:
        if float(state[:, 0].abs().max()) > 100.0:  # a host read: cannot be captured
            raise RuntimeError("unreachable")
        return super()._transition(state, actions)


@pytest.fixture(scope="module")
def custom_envs() -> list[str]:
    ids = {
        "test/RebindingCartPole-v1": RebindingCartPole,
        "test/SyncingCartPole-v1": SyncingCartPole,
    }
    for env_id, cls in ids.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(
                env_id, entry_point="envs.cartpole:CartPoleEnv", vector_entry_point=cls,
                max_episode_steps=500,
            )  # fmt: skip
    return list(ids)


@GPU
@pytest.mark.parametrize("which", [0, 1])
def test_envs_that_cannot_be_captured_train_and_evaluate_eagerly(
    which: int, custom_envs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env_id = custom_envs[which]
    cfg = small(env_id, total_timesteps=16 * 8 * 4)
    with pytest.warns(RuntimeWarning, match="cuda_graphs: .*training eagerly"):
        result = ppo.train(cfg)
    assert result.metrics["graphed_iterations"] == 0
    torch.randint(6, (64,), device="cuda")  # no failed capture: the CUDA generator still works

    def never(*args: Any) -> Any:
        raise AssertionError("steps that cannot be captured must run eagerly")

    monkeypatch.setattr(evaluation.Evaluator, "_capture", never)
    evaluation.evaluate(
        lambda obs: (obs[:, 2] + 0.5 * obs[:, 3] > 0).long(), env_id, episodes=8, device="cuda"
    )


@GPU
@pytest.mark.parametrize(
    ("env_id", "overrides"),
    [
        ("sandbox/CartPole-v1", {"target_kl": 0.01}),  # the per-agent stop, without a host sync
        ("sandbox/Pendulum-v1", {}),  # Gaussian, grouped obs and reward normalisation
    ],
)
def test_multiseed_graphed_iterations_equal_eager_ones_bit_for_bit(
    env_id: str, overrides: dict[str, Any]
) -> None:
    """``cuda_graphs=False`` on CUDA trains the same numbers eagerly (Adam's step counts on
    the device either way)."""
    cfg = ms.MultiSeedConfig(
        ppo=small(env_id, **overrides), seeds=(0, 1, 2), write_runs=False, eval_episodes=0,
        progress=False,
    )  # fmt: skip
    graphed = ms.train(cfg)
    assert graphed.summary["graphed_iterations"] >= cfg.ppo.num_iterations - 2
    eager = ms.train(replace(cfg, ppo=ppo.replace_config(cfg.ppo, {"cuda_graphs": False})))
    assert eager.summary["graphed_iterations"] == 0
    for a, b in zip(graphed.policies, eager.policies, strict=True):
        for name, value in a.agent.state_dict().items():
            assert torch.equal(value, b.agent.state_dict()[name]), name


@GPU
def test_multiseed_to_solve_is_the_same_run_with_graphs_and_without() -> None:
    """Checks included: the kept check of every agent runs with ``cuda_graphs=False`` too
    (stepped eagerly), so the same agents pass the same checks at the same iterations. Before,
    an eager CUDA run checked only the passing agents (other episodes) with another Adam
    (H200: seed 0 alone solved in 17 iterations eagerly, 36 with graphs)."""
    base = small("sandbox/CartPole-v1", total_timesteps=16 * 8 * 60)
    base = ppo.replace_config(
        base, {"target_return": 60.0, "target_window": 1, "target_check_episodes": 5}
    )
    cfg = ms.MultiSeedConfig(
        ppo=base, seeds=(0, 1, 2), write_runs=False, eval_episodes=0, progress=False
    )
    graphed = ms.train(cfg)
    eager = ms.train(replace(cfg, ppo=ppo.replace_config(base, {"cuda_graphs": False})))
    assert graphed.summary["graphed_iterations"] > 0 and eager.summary["graphed_iterations"] == 0
    assert graphed.summary["target_checks"] > 0
    for key in ("iterations", "target_checks", "target_checked_agents", "reached_target"):
        assert graphed.summary[key] == eager.summary[key], key
    steps = [row["reached_target_step"] for row in graphed.per_seed]
    assert steps == [row["reached_target_step"] for row in eager.per_seed]
    for a, b in zip(graphed.policies, eager.policies, strict=True):
        for name, value in a.agent.state_dict().items():
            assert torch.equal(value, b.agent.state_dict()[name]), name


@GPU
def test_multiseed_stacked_evaluation_replayed_from_a_graph_equals_eager() -> None:
    cfg = ms.MultiSeedConfig(
        ppo=small("sandbox/CartPole-v1"), seeds=(0, 1, 2), write_runs=False, eval_episodes=0,
        progress=False,
    )  # fmt: skip
    result = ms.train(cfg)
    net = stacked.StackedActorCritic([p.agent for p in result.policies], 8, cfg.ppo.activation)
    spaces = {"obs_shape": [4], "action_kind": "discrete", "action_n": 2}
    cuda = torch.device("cuda")
    graphed = stacked.evaluate_stacked(net, cfg.ppo, 20, 7, cuda, spaces)
    eager_cfg = ppo.replace_config(cfg.ppo, {"cuda_graphs": False})
    eager = stacked.evaluate_stacked(net, eager_cfg, 20, 7, cuda, spaces)
    assert [e.returns for e in graphed] == [e.returns for e in eager]


@GPU
@pytest.mark.parametrize("env_id", ["sandbox/CartPole-v1", "sandbox/Pendulum-v1"])
def test_multiseed_kept_check_replays_and_equals_a_fresh_eager_evaluation(
    env_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On CUDA the multi-seed check keeps one Evaluator of every agent for the run: one
    capture, then replays that read the current weights and statistics."""
    base = small(env_id, num_steps=64, total_timesteps=16 * 64 * 6)
    base = ppo.replace_config(
        base, {"target_return": -1e9, "target_window": 1, "target_check_episodes": 3}
    )
    cfg = ms.MultiSeedConfig(
        ppo=base, seeds=(0, 1, 2), write_runs=False, progress=False, check_gap=1
    )  # a check at every iteration (on CUDA the default waits CUDA_CHECK_GAP after a failed one)
    real_check, evaluators = ms._Loop.check, []

    def compared(loop: Any, passed: list[int], seed: int) -> list[EvalResult]:
        assert loop.keep_check
        checks = real_check(loop, passed, seed)
        evaluators.append(loop.check_evaluator)
        eager_cfg = ppo.replace_config(base, {"cuda_graphs": False})
        fresh = stacked.evaluate_stacked(
            loop.net, eager_cfg, 3, seed, loop.next_obs.device, loop.spaces, obs_rms=loop.obs_rms
        )
        assert [c.returns for c in checks] == [fresh[k].returns for k in passed]
        return [EvalResult(base.env_id, [-math.inf], [1])] * len(passed)  # keep training

    monkeypatch.setattr(ms._Loop, "check", compared)
    ms.train(cfg)
    assert len(evaluators) >= 2 and all(e is evaluators[0] for e in evaluators)
    assert evaluators[0].replays > 0
