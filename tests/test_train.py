import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from handson import metrics, train


def separable_loader(n=256, batch_size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=False)


def test_fit_learns_and_returns_history():
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 2)
    loader = separable_loader()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    hist = train.fit(model, loader, torch.nn.CrossEntropyLoss(), opt, 5, val_loader=loader,
                     device="cpu", metrics={"accuracy": metrics.accuracy}, progress=False)
    assert hist["epoch"] == [1, 2, 3, 4, 5]
    assert hist["val_accuracy"][-1] > 0.95
    assert hist["train_loss"][-1] < hist["train_loss"][0]
    assert len(hist["time_s"]) == 5 and hist["time_s"] == sorted(hist["time_s"])


def test_scheduler_steps_per_batch_and_max_steps():
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (1 + step))
    train.fit(model, separable_loader(), torch.nn.CrossEntropyLoss(), opt, 1, scheduler=sched,
              device="cpu", max_steps_per_epoch=3, progress=False)
    assert opt.param_groups[0]["lr"] == pytest.approx(1 / 4)


def test_callback_stops_early():
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    hist = train.fit(model, separable_loader(), torch.nn.CrossEntropyLoss(), opt, 10, device="cpu",
                     callback=lambda h, m: len(h["epoch"]) == 2, progress=False)
    assert hist["epoch"] == [1, 2]


def test_dict_batches_with_model_loss():
    class Out:
        def __init__(self, logits, loss):
            self.logits, self.loss = logits, loss

    class HFStyle(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(2, 2)

        def forward(self, inputs, labels=None):
            logits = self.linear(inputs)
            loss = torch.nn.functional.cross_entropy(logits, labels) if labels is not None else None
            return Out(logits, loss)

    x = torch.randn(64, 2)
    y = (x[:, 0] > 0).long()
    loader = [{"inputs": x[i:i + 16], "labels": y[i:i + 16]} for i in range(0, 64, 16)]
    model = HFStyle()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    hist = train.fit(model, loader, None, opt, 3, val_loader=loader, device="cpu", progress=False,
                     metrics={"accuracy": metrics.accuracy})
    assert hist["val_accuracy"][-1] > 0.8
    logits, targets = train.predict(model, loader, device="cpu")
    assert logits.shape == (64, 2) and torch.equal(targets, y)


def test_bad_batch_and_epochs_are_clear_errors():
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="tuple"):
        train.fit(model, [torch.randn(4, 2)], torch.nn.CrossEntropyLoss(), opt, 1, device="cpu", progress=False)
    with pytest.raises(ValueError, match="epochs"):
        train.fit(model, separable_loader(), torch.nn.CrossEntropyLoss(), opt, 0, device="cpu")
    with pytest.raises(ValueError, match="labels"):
        train.fit(model, [{"x": torch.randn(4, 2)}], None, opt, 1, device="cpu", progress=False)


def test_diverging_loss_is_reported():
    model = torch.nn.Linear(2, 1)
    loader = DataLoader(TensorDataset(torch.randn(32, 2) * 1e3, torch.randn(32, 1) * 1e3), batch_size=8)
    opt = torch.optim.SGD(model.parameters(), lr=1e6)
    with pytest.raises(FloatingPointError, match="learning rate"):
        train.fit(model, loader, torch.nn.MSELoss(), opt, 5, device="cpu", progress=False)


def test_bf16_autocast_on_cpu_runs():
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []
    hook = model.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    hist = train.fit(model, separable_loader(), torch.nn.CrossEntropyLoss(), opt, 1, device="cpu",
                     amp="bf16", progress=False)
    assert seen and set(seen) == {torch.bfloat16}       # autocast really ran every forward
    assert model.weight.dtype == torch.float32          # ... and the weights stayed float32
    assert 0 < hist["train_loss"][0] < 10
    seen.clear()
    train.fit(model, separable_loader(), torch.nn.CrossEntropyLoss(), opt, 1, device="cpu",
              amp=False, progress=False)
    hook.remove()
    assert set(seen) == {torch.float32}
    with pytest.raises(ValueError, match="amp"):
        train.evaluate(model, separable_loader(), torch.nn.CrossEntropyLoss(), device="cpu", amp="fp8")


def test_evaluate_ignores_padding_targets():
    model = torch.nn.Identity()
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    targets = torch.tensor([0, 1, -100])
    result = train.evaluate(model, [(logits, targets)], device="cpu", metrics={"accuracy": metrics.accuracy})
    assert result == {"accuracy": 1.0}


def test_evaluate_accepts_a_loader_without_len():
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            for i in range(4):
                yield torch.ones(2) * i, torch.tensor(i % 2)

    loader = DataLoader(Stream(), batch_size=2)
    model = torch.nn.Linear(2, 2)
    result = train.evaluate(model, loader, torch.nn.CrossEntropyLoss(), device="cpu")
    x = torch.stack([torch.ones(2) * i for i in range(4)])
    expected = torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 0, 1])).item()
    assert result["loss"] == pytest.approx(expected, rel=1e-6)
