"""Checkers for the exercises of chapter 9, *Training beyond one device*."""
from __future__ import annotations

from . import close, function_matches


# --------------------------------------------------------------------------- references

def reference_sampler_indices(n, num_replicas, rank):
    """The indices ``DistributedSampler(shuffle=False, drop_last=False)`` gives one rank."""
    from torch.utils.data import DistributedSampler
    return list(DistributedSampler(range(n), num_replicas=num_replicas, rank=rank, shuffle=False))


# --------------------------------------------------------------------------- checkers

def bytes_per_param(answer) -> bool:
    """Model-state bytes per parameter: mixed precision (fp16 weights and gradients, fp32 master
    weights) with SGD with momentum (one fp32 buffer)."""
    from handson.scaling import bytes_per_parameter
    expected = bytes_per_parameter("mixed", "sgd_momentum")["total"]
    return close(answer, expected, integer=True, label="bytes per parameter",
                 nudge="add up what each parameter costs: the half-precision weight and its "
                       "gradient, then everything the optimizer keeps in fp32",
                 hint="count four items: the fp16 weight, the fp16 gradient, the fp32 master "
                      "copy of the weight and the fp32 momentum buffer (SGD keeps one buffer, "
                      "Adam two)")


def zero2_memory(answer) -> bool:
    """Model states per device in GB (10**9 bytes), to 1 decimal: ZeRO stage 2, 13B parameters,
    16 devices, mixed-precision Adam (K = 12)."""
    from handson.scaling import zero_memory_bytes
    expected = zero_memory_bytes(13_000_000_000, 16, 2) / 1e9
    return close(answer, expected, places=1, label="ZeRO-2 memory per device",
                 nudge="at stage 2 each device keeps the whole fp16 weights but only its share "
                       "of the gradients and optimizer states",
                 hint="stage 2 keeps 2 bytes per parameter whole and divides (2 + K) bytes per "
                      "parameter by the number of devices; GB here means 10**9 bytes, not 2**30")


def micro_batches(answer) -> bool:
    """Accumulation steps for a global batch of 1024 with micro-batches of 16 on 8 GPUs."""
    from handson.scaling import micro_batches as reference
    expected = reference(1024, 16, 8)
    return close(answer, expected, integer=True, label="micro-batches per step",
                 nudge="one optimizer step sees micro_batch x GPUs x accumulation steps samples",
                 hint="every GPU processes its own micro-batch at the same time, so one round of "
                      "micro-batches covers micro_batch x number of GPUs samples; the answer is "
                      "a whole number")


def mfu(answer) -> bool:
    """MFU, as a fraction to 2 decimals: 1.3B parameters, 100,000 tokens/s, 8 GPUs of 312 TFLOP/s."""
    from handson.scaling import mfu as reference
    expected = reference(1.3e9, 100_000, 1.0, 8 * 312e12)
    return close(answer, expected, places=2, label="MFU",
                 nudge="divide the FLOP/s the model needs by the FLOP/s the cluster could give",
                 hint="training costs about 6 FLOPs per parameter per token (2 forward, 4 "
                      "backward); the peak is that of all 8 GPUs together; give a fraction, "
                      "not a percentage")


def sampler_indices(your_fn) -> bool:
    """``your_fn(n, num_replicas, rank)`` returns the sample ids that rank sees in one epoch of
    ``DistributedSampler(dataset_of_n, num_replicas, rank, shuffle=False)``."""
    cases = [(10, 2, 0), (10, 2, 1), (10, 3, 2), (7, 4, 3), (13, 5, 0), (5, 8, 6), (16, 4, 1),
             (11, 3, 1)]

    def make(trial):
        return cases[trial]

    return function_matches(your_fn, reference_sampler_indices, make, trials=len(cases),
                            rtol=0, atol=0, label="sampler_indices",
                            nudge="DistributedSampler deals the samples out like cards",
                            hint="rank r gets every num_replicas-th sample starting at r; when n "
                                 "is not a multiple of num_replicas the list is first padded "
                                 "with samples from its start, so every rank gets "
                                 "ceil(n / num_replicas) of them")
