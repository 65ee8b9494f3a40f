"""handson.vision: convolution arithmetic, models, batch augmentation, TTA, saving; and
the chapter-5 checkers (handson.check.vision)."""
import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import handson.check.vision as cv
from handson import vision
from conftest import needs_data

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- arithmetic

def test_conv_output_size_matches_nn_conv2d_and_maxpool():
    for n, k, p, s, d in itertools.product((5, 8, 11), (1, 2, 3, 5), (0, 1, 2), (1, 2, 3), (1, 2)):
        if n + 2 * p < d * (k - 1) + 1:
            with pytest.raises(ValueError, match="kernel covers"):
                vision.conv_output_size(n, k, p, s, d)
            continue
        conv = nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d)
        assert conv(torch.zeros(1, 1, n, n)).shape[-1] == vision.conv_output_size(n, k, p, s, d)
        if d == 1 and 2 * p <= k:
            pool = nn.MaxPool2d(k, stride=s, padding=p)
            assert pool(torch.zeros(1, 1, n, n)).shape[-1] == vision.conv_output_size(n, k, p, s)


@pytest.mark.parametrize("kwargs, error", [
    (dict(n=0, kernel=3), ValueError), (dict(n=5, kernel=3, stride=0), ValueError),
    (dict(n=5, kernel=3, padding=-1), ValueError), (dict(n=5.0, kernel=3), TypeError),
    (dict(n=5, kernel=True), TypeError)])
def test_conv_output_size_rejects_bad_input(kwargs, error):
    with pytest.raises(error):
        vision.conv_output_size(**kwargs)


@pytest.mark.parametrize("stride, padding, dilation", [(1, 0, 1), (2, 1, 1), (1, 2, 2), ((2, 1), (0, 1), (1, 2))])
def test_conv2d_unfold_equals_f_conv2d(stride, padding, dilation):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 9, 10, generator=g, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 2, generator=g, dtype=torch.float64)
    b = torch.randn(4, generator=g, dtype=torch.float64)
    ours = vision.conv2d_unfold(x, w, b, stride, padding, dilation)
    ref = F.conv2d(x, w, b, stride, padding, dilation)
    assert ours.shape == ref.shape
    assert torch.allclose(ours, ref, atol=1e-12)
    assert torch.allclose(vision.conv2d_unfold(x, w), F.conv2d(x, w), atol=1e-12)


def test_conv2d_unfold_errors_say_what_to_do():
    x = torch.randn(1, 3, 5, 5)
    with pytest.raises(ValueError, match="unsqueeze"):
        vision.conv2d_unfold(x[0], torch.randn(2, 3, 3, 3))
    with pytest.raises(ValueError, match="input channels"):
        vision.conv2d_unfold(x, torch.randn(2, 4, 3, 3))
    with pytest.raises(TypeError, match="float"):
        vision.conv2d_unfold(x.to(torch.uint8), torch.randn(2, 3, 3, 3))
    with pytest.raises(ValueError, match="bias"):
        vision.conv2d_unfold(x, torch.randn(2, 3, 3, 3), torch.randn(3))


@pytest.mark.parametrize("kernel, stride", [(2, None), (3, 2), (3, 1)])
def test_pool2d_unfold_equals_torch(kernel, stride):
    x = torch.randn(2, 3, 8, 9, generator=torch.Generator().manual_seed(1))
    assert torch.equal(vision.pool2d_unfold(x, kernel, stride, "max"), F.max_pool2d(x, kernel, stride))
    assert torch.allclose(vision.pool2d_unfold(x, kernel, stride, "avg"), F.avg_pool2d(x, kernel, stride),
                          atol=1e-6)
    with pytest.raises(ValueError, match="mode"):
        vision.pool2d_unfold(x, 2, mode="median")


def _empirical_receptive_field(specs, size=80):
    """Width of the input region that one output pixel depends on (all-ones convolutions)."""
    layers = []
    for k, s, d in specs:
        conv = nn.Conv2d(1, 1, k, stride=s, dilation=d, bias=False)
        nn.init.ones_(conv.weight)
        layers.append(conv)
    x = torch.zeros(1, 1, size, size, requires_grad=True)
    out = nn.Sequential(*layers)(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(1))
    return int(rows.max() - rows.min() + 1)


@pytest.mark.parametrize("specs", [[(3, 1, 1)] * 4, [(3, 1, 1), (2, 2, 1), (3, 1, 1), (2, 2, 1), (3, 1, 1)],
                                   [(3, 1, 1), (3, 1, 2), (3, 1, 4)], [(5, 2, 1), (3, 2, 1), (3, 1, 1)]])
def test_receptive_field_matches_gradient_support(specs):
    assert vision.receptive_field(specs) == _empirical_receptive_field(specs)
    steps = vision.receptive_field(specs, per_layer=True)
    assert len(steps) == len(specs) and steps[-1][0] == vision.receptive_field(specs)


def test_receptive_field_of_models():
    assert vision.layer_specs(vision.SmallCNN()) == [(3, 1, 1), (2, 2, 1), (3, 1, 1), (2, 2, 1), (3, 1, 1)]
    assert vision.receptive_field(vision.SmallCNN()) == 18
    specs = vision.layer_specs(vision.FastResNet(4))
    assert vision.receptive_field(vision.FastResNet(4)) == _empirical_receptive_field(specs, size=140) == 64
    assert vision.receptive_field([(3, 1), (2, 2)]) == 4
    with pytest.raises(ValueError, match="no Conv2d"):
        vision.receptive_field(nn.Linear(3, 3))
    with pytest.raises(ValueError, match="layer 0"):
        vision.receptive_field([(3,)])


# ----------------------------------------------------------------------------- bookkeeping

def test_small_cnn_shapes_and_parameters():
    model = vision.SmallCNN()
    assert vision.count_params(model) == 122_570
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert not isinstance(model[-1], nn.Softmax)          # ends in logits


def test_layer_table_counts_params_and_macs():
    from torch.utils.flop_counter import FlopCounterMode
    model = vision.FastResNet(width=8)
    rows = vision.layer_table(model, (3, 32, 32))
    assert sum(r["params"] for r in rows) == vision.count_params(model)
    model.eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, 32, 32))
    assert counter.get_total_flops() == 2 * sum(r["macs"] for r in rows)
    first = rows[0]
    assert first["output_shape"] == (8, 32, 32) and first["macs"] == 32 * 32 * 8 * 3 * 9
    text = vision.format_table(rows, skip=("ReLU",))
    assert "ReLU" not in text and "total" in text and f"{vision.count_params(model):,}" in text
    assert model.training is False  # layer_table restores the mode it found
    with pytest.raises(ValueError, match="batch axis"):
        vision.layer_table(model, (1, 3, 32, 32.0))


def test_fast_resnet_sizes():
    assert vision.count_params(vision.FastResNet(64)) == 6_573_120
    model = vision.FastResNet(width=4, num_classes=7)
    assert model(torch.randn(3, 3, 32, 32)).shape == (3, 7)
    with pytest.raises(ValueError, match="width"):
        vision.FastResNet(width=0)


def test_residual_block_adds_its_input():
    block = vision.ResidualBlock(4)
    x = torch.randn(2, 4, 6, 6)
    assert block(x).shape == x.shape
    for layer in block.body:
        nn.init.zeros_(layer[1].weight)        # BN scale 0: f(x) = relu(0 + bias) = 0
    assert torch.allclose(block(x), x)


# ----------------------------------------------------------------------------- data

def _images(n=6, seed=0):
    return torch.randint(0, 256, (n, 3, 8, 8), generator=torch.Generator().manual_seed(seed),
                         dtype=torch.uint8)


def test_channel_stats_matches_torch():
    images = _images(50)
    mean, std = vision.channel_stats(images, chunk=7)
    x = images.double() / 255
    assert torch.allclose(torch.tensor(mean, dtype=torch.float64), x.mean(dim=(0, 2, 3)))
    assert torch.allclose(torch.tensor(std, dtype=torch.float64), x.std(dim=(0, 2, 3), unbiased=False))
    with pytest.raises(ValueError, match="uint8"):
        vision.channel_stats(images.float())


def test_image_loader_eval_equals_torchvision_pipeline_and_denormalize():
    images, labels = _images(7), torch.arange(7)
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    loader = vision.ImageLoader(images, labels, batch_size=3, mean=mean, std=std, device="cpu")
    batches = list(loader)
    assert len(loader) == len(batches) == 3 and batches[-1][0].shape == (1, 3, 8, 8)
    x = torch.cat([b[0] for b in batches])
    assert torch.equal(torch.cat([b[1] for b in batches]), labels)          # no shuffle in eval
    tv = vision.cifar_transforms(mean, std, train=False)
    assert torch.allclose(x, torch.stack([tv(im) for im in images]), atol=1e-6)
    assert torch.allclose(vision.denormalize(x, mean, std), images.float() / 255, atol=1e-6)


def test_image_loader_train_shuffles_augments_and_is_seeded():
    images, labels = _images(10), torch.arange(10)
    kw = dict(batch_size=4, mean=[0.5] * 3, std=[0.25] * 3, train=True, device="cpu", seed=3)
    loader = vision.ImageLoader(images, labels, **kw)
    assert len(loader) == 2                                                  # drop_last in training
    first = [(x.clone(), y.clone()) for x, y in loader]
    again = [(x, y) for x, y in vision.ImageLoader(images, labels, **kw)]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    second = list(loader)                                                    # next epoch differs
    assert not all(torch.equal(a[1], b[1]) for a, b in zip(first, second))
    x, y = first[0]
    # every augmented image is a crop of its padded, possibly mirrored original
    plain = (images[y].float() / 255 - 0.5) / 0.25
    padded = F.pad(plain, (4,) * 4, mode="reflect")
    for i in range(len(y)):
        found = any(torch.allclose(x[i], cand[:, dy:dy + 8, dx:dx + 8])
                    for cand in (padded[i], padded[i].flip(-1)) for dy in range(9) for dx in range(9))
        assert found


def test_augment_batch_options():
    x = torch.randn(5, 3, 8, 8)
    assert torch.equal(vision.augment_batch(x, padding=0, flip=False), x)
    g = torch.Generator().manual_seed(0)
    flipped = vision.augment_batch(x, padding=0, flip=True, generator=g)
    assert all(torch.equal(f, o) or torch.equal(f, o.flip(-1)) for f, o in zip(flipped, x))
    with pytest.raises(ValueError, match="padding"):
        vision.augment_batch(x, padding=8)


def test_image_loader_validates():
    images = _images(4)
    kw = dict(batch_size=2, mean=[0.5] * 3, std=[0.2] * 3, device="cpu")
    with pytest.raises(ValueError, match="uint8"):
        vision.ImageLoader(images.float(), torch.zeros(4), **kw)
    with pytest.raises(ValueError, match="one label per image"):
        vision.ImageLoader(images, torch.zeros(3), **kw)
    with pytest.raises(ValueError, match="one value per channel"):
        vision.ImageLoader(images, torch.zeros(4), batch_size=2, mean=[0.5], std=[0.2])
    with pytest.raises(ValueError, match="ImageDataset"):
        vision.ImageLoader(images, batch_size=2, mean=[0.5] * 3, std=[0.2] * 3)
    with pytest.raises(ValueError, match="no batch"):
        vision.ImageLoader(images, torch.zeros(4), train=True, **{**kw, "batch_size": 8})


def test_image_loader_trains_with_fit():
    from handson import train
    torch.manual_seed(0)
    images, labels = _images(16), torch.randint(0, 3, (16,))
    loader = vision.ImageLoader(images, labels, batch_size=8, mean=[0.5] * 3, std=[0.25] * 3,
                                train=True, device="cpu")
    model = vision.FastResNet(width=2, num_classes=3)
    history = train.fit(model, loader, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), 0.1),
                        2, val_loader=vision.ImageLoader(images, labels, batch_size=8, mean=[0.5] * 3,
                                                         std=[0.25] * 3, device="cpu"),
                        device="cpu", amp="bf16", channels_last=True, progress=False,
                        metrics={"accuracy": lambda t, p: float((t == p).float().mean())})
    assert len(history["val_accuracy"]) == 2
    assert vision.time_to_accuracy(history, 0.0) == history["time_s"][0]
    assert vision.time_to_accuracy(history, 1.01) is None
    with pytest.raises(KeyError, match="val_loader"):
        vision.time_to_accuracy({"epoch": [1], "time_s": [1.0]}, 0.5)


# ----------------------------------------------------------------------------- TTA and saving

def test_flip_tta_averages_logits_of_image_and_mirror():
    model = vision.SmallCNN().eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = (model(x) + model(x.flip(-1))) / 2
        assert torch.allclose(vision.FlipTTA(model)(x), expected, atol=1e-6)
        # TTA of a mirror image gives the same prediction as of the image
        assert torch.allclose(vision.FlipTTA(model)(x.flip(-1)), expected, atol=1e-5)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_save_and_load_roundtrip(tmp_path, suffix):
    torch.manual_seed(0)
    model = vision.FastResNet(width=2).to(memory_format=torch.channels_last)
    model(torch.randn(4, 3, 32, 32))                     # changes the BN running statistics
    path = vision.save_weights(model, tmp_path / f"sub/model{suffix}")
    fresh = vision.load_weights(vision.FastResNet(width=2), path)
    for (name, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items()):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="does not fit"):
        vision.load_weights(vision.FastResNet(width=4), path)
    with pytest.raises(FileNotFoundError, match="save_weights"):
        vision.load_weights(model, tmp_path / "missing.pt")


@needs_data
def test_channel_stats_of_shipped_cifar_are_close_to_the_readme():
    from handson import data
    train = data.load_cifar10("train", limit=2000, seed=0)
    mean, std = vision.channel_stats(train.images)
    assert max(abs(m - r) for m, r in zip(mean, (0.4913, 0.4821, 0.4465))) < 0.01
    assert max(abs(s - r) for s, r in zip(std, (0.2452, 0.2428, 0.2606))) < 0.01


# ----------------------------------------------------------------------------- checkers

def basic_block(skip: bool):
    """The exercise's block, right (``relu(x + F(x))``) or without its skip connection."""
    class BasicBlock(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(channels)
            self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(channels)

        def forward(self, x):
            inner = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            return torch.relu(x + inner if skip else inner)
    return BasicBlock


def test_checkers_pass_right_answers(capsys):
    assert cv.conv_output_sizes([112, 56, 56, 27])
    assert cv.conv_layer_params(295_168, in_channels=128, out_channels=256, kernel_size=3)
    assert cv.conv_layer_macs(75_497_472, in_channels=128, out_channels=256, kernel_size=3,
                              input_size=16, padding=1)
    assert cv.receptive_field_of_chain(vision.receptive_field([(3, 1), (3, 1), (2, 2), (3, 1), (3, 1)]),
                                       [(3, 1), (3, 1), (2, 2), (3, 1), (3, 1)])

    assert cv.residual_block(basic_block(skip=True))

    def repair(model):
        return model[0]

    assert cv.double_softmax_fix(repair)
    assert capsys.readouterr().out.count("PASS") == 6


def test_checkers_give_hints_without_raising(capsys):
    assert not cv.conv_output_sizes(None)
    assert not cv.conv_output_sizes([1, 2])
    assert not cv.conv_layer_params(256 * 128 * 9, in_channels=128, out_channels=256, kernel_size=3)
    assert not cv.receptive_field_of_chain(None, [(3, 1)])

    Plain = basic_block(skip=False)                 # no skip connection

    class Stub(nn.Module):
        def __init__(self, channels):
            super().__init__()

        def forward(self, x):
            return None

    assert not cv.residual_block(Plain)
    assert not cv.residual_block(Stub)
    assert not cv.residual_block(None)
    assert not cv.double_softmax_fix(lambda model: model)           # still ends in softmax
    assert not cv.double_softmax_fix(lambda model: None)
    out = capsys.readouterr().out
    assert "PASS" not in out and out.count("hint:") >= 8


# ----------------------------------------------------------------------------- cutout, layout

def test_cutout_blanks_one_square_per_image():
    x = torch.ones(64, 3, 32, 32)
    g = torch.Generator().manual_seed(0)
    out = vision.cutout(x, 8, generator=g)
    zero = out == 0
    assert torch.equal(zero[:, :1].expand_as(zero), zero)       # all channels of the square
    per_image = zero[:, 0].sum(dim=(1, 2))
    assert per_image.max() == 64 and per_image.min() >= 16      # 8x8, clipped at a border
    rows, cols = zero[:, 0].any(dim=2), zero[:, 0].any(dim=1)    # one contiguous square
    for r, c, count in zip(rows, cols, per_image):
        assert int(r.sum()) * int(c.sum()) == int(count)
    # fraction of zeroed pixels: mean clipped area of a centre uniform over the 32x32 pixels
    big = vision.cutout(torch.ones(4000, 1, 32, 32), 8, torch.Generator().manual_seed(1))
    side = torch.arange(32)
    expected = ((torch.clamp(side + 4, max=32) - torch.clamp(side - 4, min=0)).float().mean()
                ** 2 / 32 ** 2)
    assert float((big == 0).float().mean()) == pytest.approx(float(expected), rel=0.03)
    assert torch.equal(x, torch.ones_like(x))                   # the input is not modified


def test_cutout_positions_are_random_and_seeded():
    x = torch.ones(16, 3, 32, 32)
    g = torch.Generator().manual_seed(0)
    first, second = vision.cutout(x, 8, g), vision.cutout(x, 8, g)
    assert not torch.equal(first, second)                       # new positions every call
    assert torch.equal(first, vision.cutout(x, 8, torch.Generator().manual_seed(0)))
    assert not torch.equal(first[0], first[1])                  # per image, not per batch
    assert vision.cutout(x, 8, value=-1.0).min() == -1.0


def test_cutout_size_zero_and_bad_input():
    x = torch.randn(4, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert vision.cutout(x, 0, g) is x and torch.equal(g.get_state(), state)   # no draw
    with pytest.raises(ValueError, match="larger than"):
        vision.cutout(x, 9)
    with pytest.raises(ValueError, match="size"):
        vision.cutout(x, -1)
    with pytest.raises(TypeError, match="floating-point"):
        vision.cutout(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), 4)
    with pytest.raises(ValueError, match="batch"):
        vision.cutout(torch.randn(3, 8, 8), 4)
    with pytest.raises(TypeError, match="Generator"):
        vision.cutout(x, 4, generator=0)


def test_image_loader_cutout_channels_last_and_device_generator():
    images = torch.randint(0, 256, (20, 3, 16, 16), dtype=torch.uint8)
    labels = torch.arange(20) % 4
    kw = dict(batch_size=5, mean=[0.5] * 3, std=[0.25] * 3, train=True, device="cpu", seed=2)
    plain = [x for x, _ in vision.ImageLoader(images, labels, **kw)]
    cl = vision.ImageLoader(images, labels, channels_last=True, **kw)
    assert cl.generator.device == torch.device("cpu")
    cl_batches = [x for x, _ in cl]
    assert all(x.is_contiguous(memory_format=torch.channels_last) for x in cl_batches)
    assert all(torch.equal(a, b) for a, b in zip(plain, cl_batches))   # a layout only
    cut = [x for x, _ in vision.ImageLoader(images, labels, cutout=6, **kw)]
    # batch 1 has the same crops and flips (cutout draws after them); only the square differs
    assert torch.equal(plain[0] != cut[0], (cut[0] == 0) & (plain[0] != 0))
    assert all(((b == 0).all(dim=1).sum(dim=(1, 2)) >= 9).all() for b in cut)
    # without training there is no cutout; the eval loader keeps images as they are
    ev = vision.ImageLoader(images, labels, cutout=6, batch_size=5, mean=[0.5] * 3,
                            std=[0.25] * 3, device="cpu")
    assert not any(((x == 0).all(dim=1)).any() for x, _ in ev)
    with pytest.raises(ValueError, match="cutout"):
        vision.ImageLoader(images, labels, cutout=17, **kw)
    with pytest.raises(ValueError, match="cutout"):
        vision.ImageLoader(images, labels, cutout=-2, **kw)


def test_augment_batch_keeps_channels_last_and_draws_on_the_generator_device():
    x = torch.randn(6, 3, 12, 12).contiguous(memory_format=torch.channels_last)
    out = vision.augment_batch(x, 2, True, torch.Generator(device="cpu").manual_seed(0))
    assert out.is_contiguous(memory_format=torch.channels_last)
    ref = vision.augment_batch(x.contiguous(), 2, True, torch.Generator().manual_seed(0))
    assert torch.equal(out, ref)
    with pytest.raises(TypeError, match="Generator"):
        vision.augment_batch(x, 2, True, generator="seed")


# ----------------------------------------------------------------------------- recipes

def test_recipes_follow_the_scale_and_can_be_quoted_at_another(monkeypatch):
    monkeypatch.setenv("HANDSON_SCALE", "cpu")
    assert vision.recipe("fast_resnet")["width"] == 16
    gpu = vision.recipe("fast_resnet", at="gpu")
    assert (gpu["width"], gpu["batch_size"], gpu["epochs"], gpu["cutout"], gpu["compile"]) == \
        (64, 512, 24, 8, True) and len(gpu["seeds"]) >= 3
    assert vision.recipe("small_cnn", at="gpu")["epochs"] == 10
    assert vision.recipe("data", at="gpu")["n_train"] is None
    monkeypatch.setenv("HANDSON_SCALE", "smoke")
    assert vision.recipe("fast_resnet")["width"] == 4
    with pytest.raises(ValueError, match="recipe"):
        vision.recipe("resnet50")
    with pytest.raises(ValueError, match="at="):
        vision.recipe("data", at="tpu")
    assert vision.fast_resnet_lr(0, 0.4, 100) == 0 and vision.fast_resnet_lr(20, 0.4, 100) == 0.4
    assert vision.fast_resnet_lr(100, 0.4, 100) == 0 and vision.fast_resnet_lr(60, 0.4, 100) == \
        pytest.approx(0.2)


def _tiny_sets(n=48):
    from handson import data
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.arange(n) % 10
    return data.ImageDataset(imgs, labels, [str(i) for i in range(10)])


def test_train_fast_resnet_is_the_recipe_spelled_out():
    from handson import metrics, optim, seed, train
    sets = _tiny_sets()
    mean, std = [0.5] * 3, [0.25] * 3
    r = dict(vision.recipe("fast_resnet", at="smoke"), width=2, batch_size=16, epochs=2,
             cutout=4)
    net, hist = vision.train_fast_resnet(sets, sets, mean, std, run_seed=3, recipe_=r,
                                         device="cpu", amp=False, progress=False)
    # the same steps written out by hand
    seed.set_seed(3)
    ref = vision.FastResNet(2)
    tr = vision.ImageLoader(sets, batch_size=16, mean=mean, std=std, train=True, shuffle=True,
                            drop_last=True, device="cpu", seed=3, cutout=4)
    va = vision.ImageLoader(sets, batch_size=vision.recipe("data")["eval_batch"], mean=mean,
                            std=std, device="cpu")
    sgd = torch.optim.SGD(ref.parameters(), lr=r["peak_lr"], momentum=0.9, nesterov=True,
                          weight_decay=r["weight_decay"])
    sched = optim.FunctionLR(sgd, lambda t: vision.fast_resnet_lr(t, r["peak_lr"], 2 * len(tr)))
    ref_hist = train.fit(ref, tr, nn.CrossEntropyLoss(label_smoothing=0.2), sgd, 2,
                         val_loader=va, scheduler=sched, device="cpu", amp=False,
                         channels_last=True, metrics={"accuracy": metrics.accuracy},
                         progress=False)
    for key in ("train_loss", "val_loss", "val_accuracy", "lr"):
        assert hist[key] == pytest.approx(ref_hist[key], rel=1e-6, abs=1e-7), key
    small, small_hist = vision.train_small_cnn(sets, sets, mean, std, device="cpu", amp=False,
                                               progress=False,
                                               recipe_=dict(epochs=1, batch_size=16, lr=1e-3))
    assert isinstance(small, vision.SmallCNN) and len(small_hist["val_accuracy"]) == 1
