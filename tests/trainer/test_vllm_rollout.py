"""The vLLM rollout backend. On CPU without vLLM: vLLM-shaped outputs become the same `Rollouts`
HF sampling gives, the engine is put to sleep and woken around generation, the policy's weights
reach the engine after each step, and a trainer step runs through it. With vLLM and a GPU: a
real engine samples, and its log-probs agree with the trainer's."""

from __future__ import annotations

import importlib.util
import sys
import types
from types import SimpleNamespace

import pytest
import torch

from reasonrl.errors import ReasonRLError
from reasonrl.rollout import Rollouts, SamplingParams, VLLMRollout
from reasonrl.rollout.vllm import rollouts_from_vllm

EOS = 2  # the demo tokenizer's


def completion(token_ids, finish_reason, logps=None):
    logprobs = None if logps is None else [{t: SimpleNamespace(logprob=lp), 99: SimpleNamespace(logprob=-9.0)} for t, lp in zip(token_ids, logps)]
    return SimpleNamespace(token_ids=tuple(token_ids), finish_reason=finish_reason, logprobs=logprobs)


def test_vllm_outputs_become_padded_rollouts(tokenizer):
    prompts = [[10, 11, 12], [13]]
    outputs = [
        SimpleNamespace(outputs=[completion([20, 21, EOS], "stop", [-0.1, -0.2, -0.3]),
                                 completion([22, 23, 24, 25], "length", [-1.0, -1.1, -1.2, -1.3])]),
        SimpleNamespace(outputs=[completion([26], "stop", [-2.0]), completion([27, 28], "stop", [-3.0, -3.5])]),
    ]
    out = rollouts_from_vllm(outputs, prompts, 2, tokenizer, "cpu")
    pad = tokenizer.pad_token_id
    assert out.prompt_ids.tolist() == [[10, 11, 12]] * 2 + [[pad, pad, 13]] * 2  # left-padded
    assert out.prompt_mask.tolist() == [[1, 1, 1]] * 2 + [[0, 0, 1]] * 2
    assert out.completion_ids.tolist() == [[20, 21, EOS, pad], [22, 23, 24, 25], [26, pad, pad, pad], [27, 28, pad, pad]]
    assert out.completion_mask.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0]]
    assert out.lengths.tolist() == [3, 4, 1, 2]
    assert out.truncated.tolist() == [False, True, False, False]  # finish_reason "length"
    assert out.prompt_index.tolist() == [0, 0, 1, 1]
    # The sampled token's log-prob, not the other entry vLLM may list; 0 on padding.
    torch.testing.assert_close(out.sampler_logp, torch.tensor(
        [[-0.1, -0.2, -0.3, 0.0], [-1.0, -1.1, -1.2, -1.3], [-2.0, 0.0, 0.0, 0.0], [-3.0, -3.5, 0.0, 0.0]]))
    assert out.texts == tokenizer.batch_decode([[20, 21], [22, 23, 24, 25], [26], [27, 28]], skip_special_tokens=True)

    without_logprobs = [SimpleNamespace(outputs=[completion([20], "stop")]) for _ in prompts]
    assert rollouts_from_vllm(without_logprobs, prompts, 1, tokenizer, "cpu").sampler_logp is None
    with pytest.raises(ReasonRLError, match="completions per prompt, expected 2"):
        rollouts_from_vllm(without_logprobs, prompts, 2, tokenizer, "cpu")


class FakeLLM:
    """Just enough of `vllm.LLM`: generate (completions fixed by the prompt), sleep / wake_up,
    and the in-process engine model that `load_weights` reaches."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.events: list[tuple] = []
        self.engine_model = SimpleNamespace(loaded={}, load_weights=self._load)
        runner = SimpleNamespace(model=self.engine_model)
        self.llm_engine = SimpleNamespace(model_executor=SimpleNamespace(driver_worker=SimpleNamespace(model_runner=runner)))

    def _load(self, weights):
        self.events.append(("load_weights",))
        for name, tensor in weights:
            self.engine_model.loaded[name] = tensor.detach().clone()

    def sleep(self, level=1):
        self.events.append(("sleep", level))

    def wake_up(self, tags=None):
        self.events.append(("wake_up", tuple(tags or ())))

    def generate(self, prompts, params, use_tqdm=True):
        self.events.append(("generate",))
        self.params = params
        outputs = []
        for p in prompts:
            n0 = sum(p["prompt_token_ids"]) % 90 + 10
            texts = [f"{n0 + j} so {n0 + j}.</think><answer>{n0 + j}</answer>" for j in range(params.n)]
            completions = []
            for j, text in enumerate(texts):
                ids = (self.tokenizer(text, add_special_tokens=False)["input_ids"] + [EOS])[: params.max_tokens]
                finish = "stop" if ids[-1] == EOS else "length"
                completions.append(completion(ids, finish, [-4.4 - 0.01 * ((t + j) % 7) for t in ids]))
            outputs.append(SimpleNamespace(outputs=completions))
        return outputs


@pytest.fixture
def fake_vllm(monkeypatch):
    """`import vllm` gives a module whose SamplingParams records its arguments."""
    module = types.ModuleType("vllm")
    module.SamplingParams = lambda **kwargs: SimpleNamespace(**kwargs)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module


def test_generate_wakes_samples_and_sleeps(fake_vllm, tokenizer):
    llm = FakeLLM(tokenizer)
    rollout = VLLMRollout(llm, tokenizer, sleep_mode=True)
    rollout._sleep()  # as `for_policy` leaves it: asleep while the trainer works
    out = rollout.generate(["12+34=?<think>", "5+6=?<think>"], 3, SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=10, stop=("</answer>",)))
    assert isinstance(out, Rollouts) and out.completion_ids.shape[0] == 6 and out.sampler_logp is not None
    assert llm.events == [("sleep", 1), ("wake_up", ("weights", "kv_cache")), ("generate",), ("sleep", 1)]
    p = llm.params
    assert (p.n, p.temperature, p.top_p, p.max_tokens, p.stop, p.logprobs) == (3, 0.7, 0.9, 10, ["</answer>"], 0)
    assert p.include_stop_str_in_output and p.stop_token_ids == [tokenizer.eos_token_id]
    assert out.truncated.all()  # 10 tokens cannot hold the whole template
    greedy = rollout.generate(["1+1=?<think>"], 1, SamplingParams(greedy=True, temperature=0.7))
    assert llm.params.temperature == 0.0 and greedy.completion_ids.shape[0] == 1


def test_the_engine_sleeps_once_after_all_the_rounds_of_a_step(fake_vllm, tmp_path, tiny_model, tokenizer, problems, make_stage):
    """DAPO's refills sample several rounds in one step; the weights go to the GPU and back
    once for the step, not once per round."""
    from reasonrl.data import get_template
    from reasonrl.demo.task import PROMPT_TEMPLATE
    from reasonrl.trainer.grpo import GRPOTrainer

    llm = FakeLLM(tokenizer)
    # The fake engine's completions all give the same reward: no group has signal, so the step
    # samples max_sampling_rounds rounds.
    config = make_stage(tmp_path, algorithm={"dynamic_sampling": True, "max_sampling_rounds": 3})
    rollout = VLLMRollout(llm, tokenizer, policy=tiny_model, sleep_mode=True)
    rollout._sleep()
    trainer = GRPOTrainer(config, tiny_model, tokenizer, problems[0], template=get_template(PROMPT_TEMPLATE), rollout=rollout)
    del llm.events[:]
    metrics = trainer.train_step()
    assert metrics["dynamic_sampling/rounds"] == 3
    assert llm.events == [("wake_up", ("weights", "kv_cache")), ("generate",), ("generate",), ("generate",), ("sleep", 1)]
    with rollout.staying_awake():  # a block that raises still ends asleep
        with pytest.raises(RuntimeError):
            with rollout.staying_awake():
                rollout.generate(["1+1=?<think>"], 1, SamplingParams())
                raise RuntimeError
        assert llm.events[-1] == ("generate",)
    assert llm.events[-1] == ("sleep", 1)


def test_sync_weights_pushes_every_policy_weight(fake_vllm, tokenizer, tiny_model):
    llm = FakeLLM(tokenizer)
    rollout = VLLMRollout(llm, tokenizer, policy=tiny_model, sleep_mode=True)
    rollout._sleep()
    with torch.no_grad():
        next(tiny_model.parameters()).add_(1.0)
    rollout.sync_weights()
    assert llm.events[-2:] == [("wake_up", ("weights",)), ("load_weights",)]  # the KV cache stays asleep
    expected = dict(tiny_model.named_parameters())
    assert llm.engine_model.loaded.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(llm.engine_model.loaded[name], tensor.detach()), name


def test_a_trainer_step_through_the_vllm_backend(fake_vllm, tmp_path, tiny_model, tokenizer, problems, make_stage):
    """The trainer reads the sampler's log-probs, reports the mismatch, corrects with TIS, and
    pushes the updated weights to the engine after the optimizer step."""
    from reasonrl.data import get_template
    from reasonrl.demo.task import PROMPT_TEMPLATE
    from reasonrl.trainer.grpo import GRPOTrainer

    llm = FakeLLM(tokenizer)
    config = make_stage(tmp_path, algorithm={"tis_cap": 2.0})
    train, _ = problems
    trainer = GRPOTrainer(config, tiny_model, tokenizer, train, template=get_template(PROMPT_TEMPLATE),
                          rollout=VLLMRollout(llm, tokenizer, policy=tiny_model, sleep_mode=True))
    metrics = trainer.train_step()
    assert metrics["optimizer_steps"] == 1
    assert metrics["rollout/logp_abs_diff"] > 0 and metrics["rollout/logp_abs_diff_max"] >= metrics["rollout/logp_abs_diff"]
    assert 0 < metrics["rollout/tis_weight_mean"] <= 2.0
    assert ("load_weights",) in llm.events[llm.events.index(("generate",)):]
    # One sampling round: the engine sleeps as soon as it has sampled, before the rewards.
    assert llm.events[llm.events.index(("generate",)) + 1] == ("sleep", 1)
    for name, tensor in tiny_model.named_parameters():
        assert torch.equal(llm.engine_model.loaded[name], tensor.detach()), name  # the updated weights


def test_vllm_backend_without_vllm_says_how_to_install_it(tmp_path, tiny_model, tokenizer, problems, make_stage):
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here: the missing-vLLM message cannot be shown")
    from reasonrl.trainer.grpo import GRPOTrainer

    config = make_stage(tmp_path, rollout={"backend": "vllm"})
    with pytest.raises(ReasonRLError, match=r"pip install reasonrl\[vllm\]"):
        GRPOTrainer(config, tiny_model, tokenizer, problems[0])


def test_real_vllm_engine_samples_and_agrees_with_the_trainer(tmp_path, tokenizer, problems, make_stage):
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed (pip install reasonrl[vllm]); the real-engine test needs it and a CUDA GPU")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU: vLLM runs on GPUs only")
    from reasonrl.data import get_template
    from reasonrl.demo import DemoSettings
    from reasonrl.demo.run import build_tiny_model
    from reasonrl.demo.task import PROMPT_TEMPLATE
    from reasonrl.trainer.grpo import GRPOTrainer

    torch.manual_seed(0)
    model = build_tiny_model(len(tokenizer), tokenizer, DemoSettings(hidden_size=128, layers=2, heads=2))  # head dim 64
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    config = make_stage(
        tmp_path, model={"name_or_path": str(tmp_path / "model")},
        rollout={"backend": "vllm", "gpu_memory_utilization": 0.15, "max_model_len": 128, "max_new_tokens": 24},
        algorithm={"tis_cap": 2.0},
    )
    trainer = GRPOTrainer(config, model.cuda(), tokenizer, problems[0], template=get_template(PROMPT_TEMPLATE))
    assert isinstance(trainer.rollout, VLLMRollout)
    for _ in range(2):  # the second step samples from the weights the first one pushed
        metrics = trainer.train_step()
        assert metrics["rollout/logp_abs_diff"] < 0.05, metrics  # fp32 on both sides
