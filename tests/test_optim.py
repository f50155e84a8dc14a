"""Optimizers, clipping and schedules against torch (the oracle):
parameters after every step equal torch.optim.AdamW / SGD (foreach=False)
to 1e-6 relative, clip_grad_norm_ matches torch.nn.utils.clip_grad_norm_,
schedules give transformers' learning rates, and saving/restoring the state
(state_dict or a safetensors file) resumes bit-identically."""
import math

import numpy as np
import pytest
import torch

import peftcpp
from peftcpp import optim
from peftcpp.optim import lr_scheduler

from helpers import rel_err

STEP_RTOL = 1e-6
SHAPES = [(3, 5), (7,), (2, 3, 4), (1,), (), (33, 17), (129,)]


def _params(rng, shapes=SHAPES):
    init = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    ours = [peftcpp.tensor(a, requires_grad=True) for a in init]
    ref = [torch.tensor(a, requires_grad=True) for a in init]
    return ours, ref


def _set_grads(rng, ours, ref, skip=()):
    for i, (p, t) in enumerate(zip(ours, ref)):
        if i in skip:
            p.grad, t.grad = None, None
            continue
        g = (rng.standard_normal(p.shape) * rng.uniform(0.01, 3.0)).astype(np.float32)
        p.grad = peftcpp.tensor(g)
        t.grad = torch.tensor(g)


def _assert_params_close(ours, ref, what):
    for i, (p, t) in enumerate(zip(ours, ref)):
        err = rel_err(p.numpy(), t.detach().numpy())
        assert err <= STEP_RTOL, f"{what}: parameter {i} {tuple(p.shape)} relative error {err:.3g}"


def _step_both(rng, opt, topt, ours, ref, steps, what="step"):
    """`steps` steps of peftcpp's `opt` and torch's `topt` on the same random
    gradients: the parameters match after every step."""
    for step in range(steps):
        _set_grads(rng, ours, ref)
        opt.step()
        topt.step()
        _assert_params_close(ours, ref, f"{what} {step + 1}")


def _bits(params):
    return [p.numpy().copy().view(np.uint32) for p in params]


# ----------------------------------------------------------------- AdamW

@pytest.mark.parametrize("weight_decay", [0.0, 1e-2, 0.3])
def test_adamw_matches_torch_every_step(rng, weight_decay):
    ours, ref = _params(rng)
    kw = dict(lr=3e-2, betas=(0.9, 0.98), eps=1e-8, weight_decay=weight_decay)
    opt = optim.AdamW(ours, **kw)
    topt = torch.optim.AdamW(ref, foreach=False, **kw)
    _step_both(rng, opt, topt, ours, ref, 20)
    # The state matches torch's too.
    for p, t in zip(ours, ref):
        s, ts = opt.state[p], topt.state[t]
        assert s["step"] == int(ts["step"].item()) == 20
        assert rel_err(s["exp_avg"].numpy(), ts["exp_avg"].numpy()) <= STEP_RTOL
        assert rel_err(s["exp_avg_sq"].numpy(), ts["exp_avg_sq"].numpy()) <= STEP_RTOL


def test_adamw_default_hyperparameters_match_torch():
    o = optim.AdamW([peftcpp.zeros(2, requires_grad=True)])
    t = torch.optim.AdamW([torch.zeros(2, requires_grad=True)])
    for k in ("lr", "betas", "eps", "weight_decay"):
        assert o.param_groups[0][k] == t.param_groups[0][k], k


def test_adamw_param_groups_with_own_hyperparameters_and_lr_changes(rng):
    ours, ref = _params(rng)
    groups = lambda ps: [{"params": ps[:3], "lr": 1e-2, "weight_decay": 0.0},  # noqa: E731
                         {"params": ps[3:], "betas": (0.8, 0.99)}]
    opt = optim.AdamW(groups(ours), lr=5e-3)
    topt = torch.optim.AdamW(groups(ref), lr=5e-3, foreach=False)
    assert opt.param_groups[1]["lr"] == 5e-3 and opt.param_groups[0]["weight_decay"] == 0.0
    for step in range(12):
        _set_grads(rng, ours, ref, skip=(1,) if step % 3 == 0 else ())
        if step == 6:  # changing lr in a group takes effect on the next step
            opt.param_groups[0]["lr"] = topt.param_groups[0]["lr"] = 2e-2
        opt.step()
        topt.step()
        _assert_params_close(ours, ref, f"step {step + 1}")


def test_adamw_with_linear_schedule_matches_torch_lambda_lr(rng):
    ours, ref = _params(rng)
    opt = optim.AdamW(ours, lr=1e-2)
    topt = torch.optim.AdamW(ref, lr=1e-2, foreach=False)
    sched = optim.get_linear_schedule_with_warmup(opt, num_warmup_steps=3, num_training_steps=15)
    tsched = torch.optim.lr_scheduler.LambdaLR(topt, sched.lr_lambdas[0])
    for step in range(15):
        _set_grads(rng, ours, ref)
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        assert sched.get_last_lr() == tsched.get_last_lr()
        _assert_params_close(ours, ref, f"step {step + 1}")


def test_parameter_without_grad_keeps_no_state_and_is_not_moved(rng):
    ours, _ = _params(rng, [(4, 3), (5,), (2, 2)])
    frozen_before = ours[1].numpy().copy()
    opt = optim.AdamW(ours, lr=0.1)
    for _ in range(3):
        for i, p in enumerate(ours):
            p.grad = None if i == 1 else peftcpp.ones(*p.shape)
        opt.step()
    assert ours[1] not in opt.state
    assert len(opt.state) == 2
    np.testing.assert_array_equal(ours[1].numpy(), frozen_before)
    assert sorted(opt.state_dict()["state"]) == [0, 2]
    # Once it gets a gradient its state starts at step 1.
    ours[1].grad = peftcpp.ones(5)
    opt.step()
    assert opt.state[ours[1]]["step"] == 1 and opt.state[ours[0]]["step"] == 4
    # Same for SGD with momentum: no buffer for a parameter without gradient.
    sgd_params, _ = _params(rng, [(3,), (3,)])
    sgd = optim.SGD(sgd_params, lr=0.1, momentum=0.9)
    sgd_params[0].grad = peftcpp.ones(3)
    sgd.step()
    assert "momentum_buffer" in sgd.state[sgd_params[0]] and sgd_params[1] not in sgd.state


# ------------------------------------------------------------------- SGD

@pytest.mark.parametrize("kw", [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.02, momentum=0.8, nesterov=True, weight_decay=0.1),
    dict(lr=0.1, weight_decay=0.05),
], ids=["plain", "momentum", "dampening", "nesterov", "nesterov_wd", "wd"])
def test_sgd_matches_torch_every_step(rng, kw):
    ours, ref = _params(rng)
    opt = optim.SGD(ours, **kw)
    topt = torch.optim.SGD(ref, foreach=False, **kw)
    _step_both(rng, opt, topt, ours, ref, 20)
    if kw.get("momentum"):
        for p, t in zip(ours, ref):
            assert rel_err(opt.state[p]["momentum_buffer"].numpy(),
                           topt.state[t]["momentum_buffer"].numpy()) <= STEP_RTOL
    else:
        assert len(opt.state) == 0  # torch keeps no buffer without momentum


# -------------------------------------------------------------- clipping

@pytest.mark.parametrize("max_norm, norm_type", [(1.0, 2.0), (1e6, 2.0), (0.5, float("inf")), (2.0, 1.0)])
def test_clip_grad_norm_matches_torch(rng, max_norm, norm_type):
    ours, ref = _params(rng)
    _set_grads(rng, ours, ref, skip=(2,))  # a parameter without grad is ignored
    total = optim.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(ref, max_norm, norm_type=norm_type)
    assert isinstance(total, peftcpp.Tensor) and total.shape == ()
    assert abs(total.item() - ttotal.item()) <= 1e-6 * ttotal.item()
    for i, (p, t) in enumerate(zip(ours, ref)):
        if t.grad is None:
            assert p.grad is None
            continue
        assert rel_err(p.grad.numpy(), t.grad.numpy()) <= 1e-6, i
    clipped = total.item() > max_norm
    after = optim.clip_grad_norm_(ours, max_norm, norm_type=norm_type).item()
    if clipped:
        assert after == pytest.approx(max_norm, rel=1e-5)
    else:
        assert after == pytest.approx(total.item(), rel=1e-6)


def test_clip_grad_norm_single_tensor_and_nonfinite():
    p = peftcpp.tensor(np.array([3.0, 4.0], np.float32), requires_grad=True)
    p.grad = peftcpp.tensor(np.array([3.0, 4.0], np.float32))
    assert optim.clip_grad_norm_(p, 1.0).item() == pytest.approx(5.0)
    np.testing.assert_allclose(p.grad.numpy(), [0.6, 0.8], rtol=1e-6)
    p.grad = peftcpp.tensor(np.array([np.inf, 1.0], np.float32))
    with pytest.raises(RuntimeError, match="non-finite"):
        optim.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    assert optim.clip_grad_norm_([peftcpp.zeros(2, requires_grad=True)], 1.0).item() == 0.0


# ------------------------------------------------------------- schedules
# Expected values from transformers' formulas, written out independently.

def _expected(name, step, warmup, total, cycles=0.5):
    if name == "constant":
        return 1.0
    if step < warmup:
        return step / max(1, warmup)
    if name == "constant_with_warmup":
        return 1.0
    if name == "linear":
        return max(0.0, (total - step) / max(1, total - warmup))
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * cycles * 2.0 * progress)))


@pytest.mark.parametrize("name", ["constant", "constant_with_warmup", "linear", "cosine"])
@pytest.mark.parametrize("warmup, total", [(0, 10), (4, 20), (1, 1)])
def test_schedules_follow_transformers_formulas(name, warmup, total):
    base = 3e-4
    opt = optim.AdamW([peftcpp.zeros(2, requires_grad=True)], lr=base)
    sched = optim.get_scheduler(name, opt, num_warmup_steps=warmup, num_training_steps=total)
    got = [sched.get_last_lr()[0]]
    for _ in range(total + 3):  # a few steps past the end
        opt.step()
        sched.step()
        got.append(sched.get_last_lr()[0])
        assert opt.param_groups[0]["lr"] == got[-1]
    expected = [base * _expected(name, s, warmup, total) for s in range(total + 4)]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)


def test_schedule_functions_and_cosine_cycles():
    p = peftcpp.zeros(1, requires_grad=True)
    s = optim.get_cosine_schedule_with_warmup(optim.SGD([p], lr=1.0), 2, 12, num_cycles=1.0)
    lrs = [s.get_last_lr()[0]] + [(s.step(), s.get_last_lr()[0])[1] for _ in range(12)]
    assert lrs[:3] == [0.0, 0.5, 1.0]
    assert lrs[7] == pytest.approx(0.0, abs=1e-12)  # a full cycle: back down mid-way
    assert lrs[12] == pytest.approx(1.0)
    s = optim.get_constant_schedule_with_warmup(optim.SGD([peftcpp.zeros(1, requires_grad=True)], lr=2.0), 4)
    assert [(s.step(), s.get_last_lr()[0])[1] for _ in range(5)] == [0.5, 1.0, 1.5, 2.0, 2.0]
    assert optim.get_constant_schedule(optim.SGD([peftcpp.zeros(1, requires_grad=True)], lr=0.7)).get_last_lr() == [0.7]
    with pytest.raises(ValueError, match="num_warmup_steps"):
        optim.get_scheduler("linear", optim.SGD([peftcpp.zeros(1, requires_grad=True)]))
    with pytest.raises(ValueError, match="num_training_steps"):
        optim.get_scheduler("cosine", optim.SGD([peftcpp.zeros(1, requires_grad=True)]), num_warmup_steps=1)
    with pytest.raises(ValueError, match="not a valid"):
        optim.get_scheduler("polynomial-ish", optim.SGD([peftcpp.zeros(1, requires_grad=True)]))


def test_schedules_equal_transformers():
    import transformers
    configs = [(3, 17, {}), (0, 5, {}), (4, 4, {}), (2, 12, {"num_cycles": 1.5})]
    for name in ("constant", "constant_with_warmup", "linear", "cosine"):
        for warmup, total, extra in configs:
            kwargs = extra if name == "cosine" else {}
            opt = optim.SGD([peftcpp.zeros(1, requires_grad=True)], lr=0.25)
            topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.25)
            ours = optim.get_scheduler(name, opt, warmup, total, scheduler_specific_kwargs=kwargs)
            ref = transformers.get_scheduler(name, topt, warmup, total, scheduler_specific_kwargs=kwargs)
            for _ in range(total + 3):
                assert ours.get_last_lr() == ref.get_last_lr(), (name, warmup, total)
                opt.step(), topt.step(), ours.step(), ref.step()


def test_lambda_lr_matches_torch_per_group_lambdas_and_state_dict():
    lambdas = [lambda s: 0.9 ** s, lambda s: 1.0 / (1 + s)]
    opt = optim.SGD([{"params": [peftcpp.zeros(1, requires_grad=True)], "lr": 0.1},
                     {"params": [peftcpp.zeros(1, requires_grad=True)], "lr": 1.0}])
    topt = torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)], "lr": 0.1},
                            {"params": [torch.zeros(1, requires_grad=True)], "lr": 1.0}])
    s, ts = lr_scheduler.LambdaLR(opt, lambdas), torch.optim.lr_scheduler.LambdaLR(topt, lambdas)
    for _ in range(5):
        assert s.get_last_lr() == ts.get_last_lr()
        opt.step(), topt.step(), s.step(), ts.step()
    sd = s.state_dict()
    assert sd["last_epoch"] == 5 and sd["base_lrs"] == [0.1, 1.0] and "optimizer" not in sd
    # Resume: a new scheduler on a new optimizer continues from step 5.
    opt2 = optim.SGD([{"params": [peftcpp.zeros(1, requires_grad=True)], "lr": 0.1},
                      {"params": [peftcpp.zeros(1, requires_grad=True)], "lr": 1.0}])
    s2 = lr_scheduler.LambdaLR(opt2, lambdas)
    s2.load_state_dict(sd)
    s2.step()
    s.step()
    assert s2.get_last_lr() == s.get_last_lr()
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas"):
        lr_scheduler.LambdaLR(opt, lambdas[:1] * 3)


# ------------------------------------------------------- save and resume

def _run(opt_factory, sched_factory, params, grads, steps):
    opt = opt_factory(params)
    sched = sched_factory(opt) if sched_factory else None
    for g in grads[:steps]:
        for p, gi in zip(params, g):
            p.grad = None if gi is None else peftcpp.tensor(gi)
        opt.step()
        if sched:
            sched.step()
    return opt, sched


def _grad_sequence(rng, shapes, n):
    # Parameter 1 has no gradient at some steps (state must still resume).
    return [[None if (i == 1 and s % 4 == 0) else rng.standard_normal(sh).astype(np.float32)
             for i, sh in enumerate(shapes)] for s in range(n)]


def _copy_params(params):
    return [peftcpp.tensor(p.numpy().copy(), requires_grad=True) for p in params]


FACTORIES = {
    "adamw": lambda ps: optim.AdamW([{"params": ps[:2]}, {"params": ps[2:], "lr": 3e-3}], lr=1e-2,
                                    weight_decay=0.05),
    "sgd": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
}


@pytest.mark.parametrize("kind", sorted(FACTORIES))
@pytest.mark.parametrize("via", ["state_dict", "file"])
def test_resume_is_bit_identical_to_uninterrupted_run(rng, tmp_path, kind, via):
    shapes = [(4, 3), (5,), (2, 3, 2), ()]
    init, _ = _params(rng, shapes)
    grads = _grad_sequence(rng, shapes, 20)
    sched_factory = lambda o: optim.get_cosine_schedule_with_warmup(o, 3, 20)  # noqa: E731
    factory = FACTORIES[kind]

    full_params = _copy_params(init)
    _run(factory, sched_factory, full_params, grads, 20)

    first = _copy_params(init)
    opt1, sched1 = _run(factory, sched_factory, first, grads, 10)
    if via == "state_dict":
        saved_opt = opt1.state_dict()
    else:
        opt1.save_state(tmp_path / "opt.safetensors")
    saved_sched = sched1.state_dict()
    saved_params = [p.numpy().copy() for p in first]
    # Keep training the first optimizer: a snapshot must not change.
    _run(lambda ps: opt1, None, first, grads[10:12], 2)
    del opt1, sched1

    resumed = [peftcpp.tensor(a, requires_grad=True) for a in saved_params]
    # torch's resume order: build both, then load both.
    opt2 = factory(resumed)
    sched2 = sched_factory(opt2)
    if via == "state_dict":
        opt2.load_state_dict(saved_opt)
    else:
        opt2.load_state(tmp_path / "opt.safetensors")
    sched2.load_state_dict(saved_sched)
    assert opt2.param_groups[0]["lr"] == saved_sched["_last_lr"][0]
    for g in grads[10:]:
        for p, gi in zip(resumed, g):
            p.grad = None if gi is None else peftcpp.tensor(gi)
        opt2.step()
        sched2.step()
    for a, b in zip(_bits(resumed), _bits(full_params)):
        np.testing.assert_array_equal(a, b)


def test_state_dict_layout_is_torch_like(rng):
    ours, ref = _params(rng, [(3,), (2, 2)])
    opt = optim.AdamW([{"params": [ours[0]]}, {"params": [ours[1]], "lr": 0.5}])
    topt = torch.optim.AdamW([{"params": [ref[0]]}, {"params": [ref[1]], "lr": 0.5}])
    _set_grads(rng, ours, ref)
    opt.step()
    topt.step()
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert sorted(sd) == ["param_groups", "state"]
    assert list(sd["state"]) == list(tsd["state"]) == [0, 1]
    assert set(sd["state"][0]) == set(tsd["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    for g, tg in zip(sd["param_groups"], tsd["param_groups"]):
        assert g["params"] == tg["params"]
        for k in ("lr", "betas", "eps", "weight_decay"):
            assert g[k] == tg[k]


def test_load_torch_state_dict_and_continue_like_torch(rng):
    ours, ref = _params(rng)
    topt = torch.optim.AdamW(ref, lr=1e-2, foreach=False)
    for _ in range(5):
        _set_grads(rng, ours, ref)
        topt.step()
    # Start from torch's parameters and optimizer state.
    ours = [peftcpp.tensor(t.detach().numpy().copy(), requires_grad=True) for t in ref]
    opt = optim.AdamW(ours, lr=123.0)  # overwritten by the loaded hyper-parameters
    opt.load_state_dict(topt.state_dict())
    assert opt.param_groups[0]["lr"] == 1e-2 and opt.state[ours[0]]["step"] == 5
    _step_both(rng, opt, topt, ours, ref, 5, what="resumed step")


def test_load_rejects_mismatched_state(rng, tmp_path):
    ours, _ = _params(rng, [(3,), (2,)])
    adam = optim.AdamW(ours)
    for p in ours:
        p.grad = peftcpp.ones(*p.shape)
    adam.step()
    sgd = optim.SGD(ours, lr=0.1, momentum=0.9)
    sgd.step()
    sgd.save_state(tmp_path / "sgd.st")
    with pytest.raises(ValueError, match="holds SGD state"):
        adam.load_state(tmp_path / "sgd.st")
    with pytest.raises(ValueError, match="size"):
        optim.AdamW([ours[0]]).load_state_dict({"state": {}, "param_groups": [{"params": [0, 1]}]})
    bad = adam.state_dict()
    bad["state"][0]["exp_avg"] = peftcpp.zeros(4)
    before = adam.state[ours[0]]["exp_avg"].numpy().copy()
    with pytest.raises(ValueError, match="shape"):
        adam.load_state_dict(bad)
    np.testing.assert_array_equal(adam.state[ours[0]]["exp_avg"].numpy(), before)  # unchanged


def test_zero_grad_and_constructor_checks():
    a, b = peftcpp.zeros(3, requires_grad=True), peftcpp.zeros(2, requires_grad=True)
    opt = optim.SGD([a, b], lr=0.1)
    a.grad, b.grad = peftcpp.ones(3), peftcpp.ones(2)
    opt.zero_grad(set_to_none=False)
    assert a.grad is not None and a.grad.numpy().tolist() == [0.0, 0.0, 0.0]
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.AdamW([])
    with pytest.raises(TypeError):
        optim.AdamW(a)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.AdamW([{"params": [a]}, {"params": [a]}])
    with pytest.raises(ValueError, match="Invalid learning rate"):
        optim.AdamW([a], lr=-1.0)
    with pytest.raises(ValueError, match="beta parameter at index 1"):
        optim.AdamW([a], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([a], lr=0.1, nesterov=True)
    loss = opt.step(closure=lambda: 42.0)
    assert loss == 42.0


def test_read_only_parameter_is_refused_before_anything_moves(tmp_path):
    from peftcpp import serialization as pio
    pio.save_file({"w": peftcpp.ones(3)}, tmp_path / "w.st")
    frozen = pio.load_file(tmp_path / "w.st")["w"]
    frozen.requires_grad_(True)
    frozen.grad = peftcpp.ones(3)
    ok = peftcpp.zeros(3, requires_grad=True)
    ok.grad = peftcpp.ones(3)
    opt = optim.AdamW([ok, frozen])
    with pytest.raises(ValueError, match="read-only"):
        opt.step()
    assert ok.numpy().tolist() == [0.0, 0.0, 0.0] and len(opt.state) == 0
