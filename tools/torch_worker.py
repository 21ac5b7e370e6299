"""The PyTorch side of tools/benchmark.py (timm, or torchvision where timm lacks the family), in its
own process.

TensorFlow and PyTorch each keep a pool of intra-op threads; in one process the two pools
compete for the same cores, so tools/benchmark.py runs this script with a python that has
torch and timm (no TensorFlow) and talks to it over JSON lines on stdin/stdout:

    {"cmd": "build", "key": K, "timm": "resnet50", "size": 224, "batch": 16, "classes": 1000}
        -> {"key": K, "params": N}          # as Keras counts: BatchNorm statistics included
    {"cmd": "run", "key": K, "mode": "train" | "inference", "steps": N}
        -> {"wall": seconds, "cpu": seconds}      # time.perf_counter / time.process_time
    {"cmd": "free", "key": K}  -> {"ok": true}
    {"cmd": "quit"}            -> {"ok": true}, then exits

`"timm"` names a timm model, or `"torchvision:NAME"` (a `torchvision.models` builder: alexnet,
googlenet, squeezenet1_0, ...; GoogLeNet with its two auxiliary classifiers, which train with
weight 0.3 each, as keras_cnn's) or `"torch:lenet5"` (LeNet-5 as keras_cnn builds it: tanh,
average pooling, fully connected C3), for the families timm has no model of.

On start it writes one line, `{"ready": true, "torch": ..., "timm": ..., "torchvision": ...,
"threads": ...}` (torchvision `null` when it is not installed) or
`{"ready": false, "error": ...}` when torch or timm cannot be imported; a failed command answers
`{"error": ...}`. The parent starts it with `OMP_NUM_THREADS=T` and `OMP_WAIT_POLICY=PASSIVE`:
passive, so its OpenMP threads sleep instead of spinning while the TensorFlow side runs.

Each model runs as a timm user would run it: model and input in channels_last, the uniform
[0, 255) images normalised with the model's mean/std inside the timed step (one `addcmul`; the
keras_cnn models normalise inside the model), a training step `zero_grad(set_to_none=True)`,
forward, `cross_entropy`, backward and `SGD(lr=1e-3, momentum=0.9).step()` in `.train()`, and
inference in `.eval()` under `torch.inference_mode()`.

    python tools/torch_worker.py --threads 4
"""

import argparse
import json
import math
import os
import sys
import time

# GoogLeNet's auxiliary losses, as keras_cnn's GoogLeNet weights them in `fit` (Szegedy et al. 2015).
AUX_LOSS_WEIGHT = 0.3


def lenet5(torch, classes, channels=3):
    """LeNet-5 as `keras_cnn.LeNet5` builds it (62,006 parameters for 3 channels, 10 classes)."""
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(channels, 6, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(),
        nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, classes),
    )


def build_model(torch, timm, name, classes):
    """The PyTorch model `name` names (module docstring), randomly initialised, and its
    normalisation `(mean, std)` (timm's `pretrained_cfg`, else ImageNet's)."""
    imagenet = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    if name == "torch:lenet5":
        return lenet5(torch, classes), imagenet
    if name.startswith("torchvision:"):
        import torchvision

        arch = name.split(":", 1)[1]
        extra = {"aux_logits": True, "init_weights": True} if arch == "googlenet" else {}
        return torchvision.models.get_model(arch, weights=None, num_classes=classes, **extra), imagenet
    model = timm.create_model(name, pretrained=False, num_classes=classes)
    cfg = model.pretrained_cfg
    return model, (cfg.get("mean", imagenet[0]), cfg.get("std", imagenet[1]))


def parse_args(argv=None):
    """Parses the command line: the intra-op thread count."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, required=True, help="torch intra-op threads")
    return parser.parse_args(argv)


class Runner:
    """One PyTorch model with its optimizer and a fixed batch, ready to time."""

    def __init__(self, torch, timm, name, size, batch, classes):
        """Builds the model `name` names (`build_model`) and its data.

        Args:
            torch: The torch module (imported by `main`, so this file imports without it).
            timm: The timm module.
            name: A timm model name, `"torchvision:NAME"` or `"torch:lenet5"`.
            size: Square input size in pixels.
            batch: Batch size.
            classes: Number of classes of the classifier.
        """
        self.torch = torch
        self.model, (mean, std) = build_model(torch, timm, name, classes)
        self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-3, momentum=0.9)
        generator = torch.Generator().manual_seed(0)
        self.x = (torch.rand(batch, 3, size, size, generator=generator) * 255).contiguous(
            memory_format=torch.channels_last)
        self.y = torch.randint(0, classes, (batch,), generator=generator)
        # x / 255, then (x - mean) / std, folded into one elementwise x * scale + shift.
        mean = torch.tensor(mean).view(1, 3, 1, 1)
        std = torch.tensor(std).view(1, 3, 1, 1)
        self.scale, self.shift = 1.0 / (255.0 * std), -mean / std
        # Counted as Keras counts: BatchNorm's moving mean and variance included.
        self.params = sum(p.numel() for p in self.model.parameters()) + sum(
            b.numel() for b in self.model.buffers() if b.is_floating_point())

    def normalised(self):
        """The batch as the model expects it (part of every timed step)."""
        return self.torch.addcmul(self.shift, self.x, self.scale)

    def train_step(self):
        """One SGD step; returns the loss (auxiliary classifiers' losses weighted `AUX_LOSS_WEIGHT`)."""
        self.optimizer.zero_grad(set_to_none=True)
        outputs = self.model(self.normalised())
        cross_entropy = self.torch.nn.functional.cross_entropy
        if isinstance(outputs, tuple):  # torchvision GoogLeNet in training: (logits, aux2, aux1)
            main, *aux = outputs
            loss = cross_entropy(main, self.y) + AUX_LOSS_WEIGHT * sum(cross_entropy(a, self.y) for a in aux)
        else:
            loss = cross_entropy(outputs, self.y)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def run(self, mode, steps):
        """Runs `steps` batches of `mode`; returns wall-clock and process CPU seconds."""
        if mode not in ("train", "inference"):
            raise ValueError(f"`mode` must be 'train' or 'inference', received mode={mode!r}")
        self.model.train(mode == "train")
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            if mode == "train":
                loss = self.train_step()
                if not math.isfinite(loss):
                    raise FloatingPointError(f"non-finite training loss {loss!r}")
            else:
                with self.torch.inference_mode():
                    self.model(self.normalised())
        return time.perf_counter() - start, time.process_time() - start_cpu


def serve(lines, reply, torch, timm):
    """Answers the protocol's commands from `lines` until `quit` or end of input."""
    runners = {}
    for line in lines:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            cmd = request.get("cmd")
            if cmd == "build":
                runner = Runner(torch, timm, request["timm"], request["size"], request["batch"],
                                request["classes"])
                runners[request["key"]] = runner
                reply({"key": request["key"], "params": runner.params})
            elif cmd == "run":
                wall, cpu = runners[request["key"]].run(request["mode"], request["steps"])
                reply({"wall": wall, "cpu": cpu})
            elif cmd == "free":
                runners.pop(request["key"], None)
                reply({"ok": True})
            elif cmd == "quit":
                reply({"ok": True})
                return
            else:
                reply({"error": f"unknown command {cmd!r}"})
        except Exception as error:  # noqa: BLE001 - the parent gets every failure as a reply
            reply({"error": f"{type(error).__name__}: {error}"})


def main(argv=None):
    """Entry point: reports readiness (or why not), then serves commands; returns the exit status."""
    args = parse_args(argv)
    protocol = sys.stdout
    # Anything a library prints goes to stderr: stdout carries only protocol lines.
    sys.stdout = sys.stderr

    def reply(message):
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    try:
        import timm
        import torch
    except ImportError as error:
        reply({"ready": False, "error": f"{sys.executable} cannot import torch/timm ({error})"})
        return 1
    try:
        import torchvision

        torchvision_version = torchvision.__version__
    except ImportError:
        torchvision_version = None
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    reply({
        "ready": True,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "torchvision": torchvision_version,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "python": sys.executable,
    })
    serve(sys.stdin, reply, torch, timm)
    return 0


if __name__ == "__main__":
    sys.exit(main())
