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


# ----------------------------------------------------------------------------- sync-free step
# Values recorded by running the code *before* the sync-free step landed (a per-step
# float(loss), .cpu() of the predictions, a CPU generator in ImageLoader): on a CPU the
# device-side tallies and generator must give the same history and weights.
BEFORE_IMAGE = (
    {"epoch": [1, 2, 3], "train_loss": [1.4751163125038147, 1.4143870174884796, 1.3890201449394226],
     "train_accuracy": [0.125, 0.1875, 0.265625],
     "lr": [0.020000000000000004, 0.011111111111111112, 0.007692307692307693],
     "val_loss": [1.3916361406445503, 1.3806575685739517, 1.3762567713856697],
     "val_accuracy": [0.21875, 0.3125, 0.28125]},
    [-1.9694885794306174, -0.0006560566835105419, 7.972384572029114, -0.03236240427941084,
     -0.4168654049572069, -0.5965712182223797])
BEFORE_TENSOR = (
    {"epoch": [1, 2], "train_loss": [0.7819068193435669, 0.7231203079223633],
     "train_accuracy": [0.35, 0.425], "lr": [0.01, 0.01],
     "val_loss": [0.7469056844711304, 0.697315833568573], "val_accuracy": [0.34, 0.56]},
    [-1.0171483755111694, -0.11183914542198181, -0.3936705868691206, 0.42684145271778107])


def _image_run(**loader_kw):
    from handson import seed, vision
    seed.set_seed(0)
    g = torch.Generator().manual_seed(1)
    imgs = torch.randint(0, 256, (96, 3, 16, 16), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 4, (96,), generator=g)
    tr = vision.ImageLoader(imgs[:64], labels[:64], batch_size=16, mean=[0.5] * 3, std=[0.25] * 3,
                            train=True, device="cpu", seed=3, **loader_kw)
    va = vision.ImageLoader(imgs[64:], labels[64:], batch_size=10, mean=[0.5] * 3,
                            std=[0.25] * 3, device="cpu", **loader_kw)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8),
                              torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(8, 4))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 / (1 + t))
    h = train.fit(net, tr, torch.nn.CrossEntropyLoss(label_smoothing=0.1), opt, 3, val_loader=va,
                  scheduler=sched, device="cpu", amp=False, grad_clip=1.0, channels_last=True,
                  metrics={"accuracy": metrics.accuracy}, progress=False)
    h.pop("time_s")
    return h, [float(p.detach().double().sum()) for p in net.parameters()]


def _tensor_run():
    from handson import seed
    seed.set_seed(0)
    x = torch.randn(50, 5)
    y = (x[:, 0] > 0).long()
    dl = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)
    net = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    h = train.fit(net, dl, torch.nn.CrossEntropyLoss(), opt, 2, val_loader=dl, device="cpu",
                  metrics={"accuracy": metrics.accuracy}, max_steps_per_epoch=5, progress=False)
    h.pop("time_s")
    return h, [float(p.detach().double().sum()) for p in net.parameters()]


def _same(run, before):
    history, weights = run
    assert history.keys() == before[0].keys()
    for key, values in before[0].items():
        assert history[key] == pytest.approx(values, rel=1e-6, abs=1e-6), key
    assert weights == pytest.approx(before[1], rel=1e-6, abs=1e-6)


def test_sync_free_step_gives_the_numbers_of_the_old_step_on_cpu():
    _same(_image_run(), BEFORE_IMAGE)
    _same(_tensor_run(), BEFORE_TENSOR)
    _same(_image_run(channels_last=True), BEFORE_IMAGE)      # a layout, not other numbers


def test_fit_reads_the_device_once_per_epoch_not_once_per_step(monkeypatch):
    """Host reads of tensors (float(), .item(), bool(), .cpu(), .tolist()) do not grow with the
    number of steps: the loss, the predictions and the nan/inf check stay on the device."""
    calls = []
    for name in ("__float__", "__bool__", "item", "cpu", "tolist", "__int__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _original=original, _name=name, **k):
            calls.append(_name)
            return _original(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, name, counted)

    def reads(steps):
        calls.clear()
        torch.manual_seed(0)
        model = torch.nn.Linear(2, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        train.fit(model, separable_loader(n=32 * steps), torch.nn.CrossEntropyLoss(), opt, 2,
                  device="cpu", grad_clip=1.0, metrics={"accuracy": metrics.accuracy},
                  progress=False)
        return len(calls)

    assert reads(3) == reads(12)


def test_nonfinite_loss_names_epoch_and_steps():
    model = torch.nn.Linear(2, 1)
    x, y = torch.ones(32, 2), torch.ones(32, 1)
    x[20:] = float("nan")                    # batches 3 and 4 of 4 (steps 3-4 of epoch 1)
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with pytest.raises(FloatingPointError, match=r"epoch 1, global step 3 \(of steps 1-4"):
        train.fit(model, loader, torch.nn.MSELoss(), opt, 3, device="cpu", progress=False)
    clean = DataLoader(TensorDataset(torch.ones(32, 2), torch.ones(32, 1)), batch_size=8)
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    history = {}

    def poison(h, m):                        # the weights turn nan after epoch 1
        history.update(h)
        with torch.no_grad():
            m.weight.fill_(float("inf"))
    with pytest.raises(FloatingPointError, match=r"epoch 2, global step 5 \(of steps 5-8"):
        train.fit(model, clean, torch.nn.MSELoss(), opt, 3, device="cpu", progress=False,
                  callback=poison)
    assert history["epoch"] == [1]
    with pytest.raises(FloatingPointError, match="learning rate"):
        train.train_epoch(model, loader, torch.nn.MSELoss(), opt, device="cpu", progress=False)


def test_compile_and_cudnn_benchmark_options():
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="compile"):
        train.fit(model, separable_loader(), torch.nn.CrossEntropyLoss(), opt, 1, device="cpu",
                  compile="yes", progress=False)
    before = torch.backends.cudnn.benchmark
    seen = []
    train.fit(model, separable_loader(), torch.nn.CrossEntropyLoss(), opt, 1, device="cpu",
              cudnn_benchmark=True, progress=False,
              callback=lambda h, m: seen.append(torch.backends.cudnn.benchmark))
    assert seen == [True] and torch.backends.cudnn.benchmark == before   # restored after fit



def test_compile_option_trains_the_compiled_module(monkeypatch):
    compiled = []

    def fake_compile(module):                 # torch.compile itself is slow on a CPU runner
        compiled.append(module)
        return module
    monkeypatch.setattr(torch, "compile", fake_compile)
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    hist = train.fit(model, separable_loader(), torch.nn.CrossEntropyLoss(), opt, 2,
                     val_loader=separable_loader(), device="cpu", compile=True, progress=False,
                     metrics={"accuracy": metrics.accuracy})
    assert compiled == [model] and hist["val_accuracy"][-1] > 0.9


def test_notebook_progress_bar_keeps_its_width_and_wraps_long_metrics(monkeypatch):
    """In JupyterLab a long postfix used to squeeze fit's bar to 0 px; the bar keeps 12em."""
    import tqdm.notebook
    from handson import train as train_module
    monkeypatch.setattr(train_module, "tqdm", tqdm.notebook.tqdm)   # what tqdm.auto gives in Jupyter
    bar = train_module.progress_bar(total=10, desc="train")
    try:
        label, progress, counts = bar.container.children
        assert progress.layout.min_width == "12em" and progress.layout.flex.startswith("1 1")
        assert bar.container.layout.flex_flow == "row wrap" and bar.container.layout.width == "100%"
        bar.set_postfix({f"metric_{i}": "0.1234" for i in range(12)})   # very long metrics
        assert progress.layout.min_width == "12em"
    finally:
        bar.close()
    # outside Jupyter the plain text bar is untouched
    plain = train_module.progress_bar(range(3), disable=True)
    assert list(plain) == [0, 1, 2]


def test_fit_bar_shows_few_short_numbers():
    from handson.train import _bar_metrics
    row = {"epoch": 3, "train_loss": 0.70621, "train_accuracy": 0.47, "val_loss": 0.6935,
           "val_accuracy": 0.51562, "time_s": 1.0}
    assert _bar_metrics(row) == {"loss": "0.706", "val_loss": "0.694", "val_acc": "0.516"}
    assert _bar_metrics({"train_loss": 1.0, "train_accuracy": 0.5}) == {"loss": "1.000", "acc": "0.500"}


def test_a_finished_leave_false_bar_takes_no_space(monkeypatch):
    """tqdm hides it with visibility: hidden, which keeps a blank band; the book's bar collapses."""
    import tqdm.notebook
    from handson import train as train_module
    monkeypatch.setattr(train_module, "tqdm", tqdm.notebook.tqdm)
    bar = train_module.progress_bar(range(3), desc="eval", leave=False)
    assert list(bar) == [0, 1, 2]                    # iterating to the end closes it
    assert bar.container.layout.display == "none"
    kept = train_module.progress_bar(total=2, desc="train")   # leave=True: stays shown
    kept.update(2)
    kept.close()
    assert kept.container.layout.display != "none"
