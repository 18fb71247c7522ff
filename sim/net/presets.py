"""Named presets with their sources: links, model sizes and per-worker link distributions.

Units: bandwidth in bit/s per direction (line rate; the transport's framing, or
``network.goodput``, removes protocol overhead), latency in seconds one way, host to host
through one switch, step_time in seconds per training step, params a count. A link's
``transport`` is the default ``network.transport`` on it (``sim.net.transport``).

A preset's latency is what one message pays between two hosts. On the star with the default
``server_latency = 0``, a worker-to-server message pays it once; a worker-to-worker message
(ring, halving-doubling, all-gather, tree) crosses two worker links and pays it twice.

Sources marked "estimate" are planning values, not measurements; each entry says what it rests on.
"""
from __future__ import annotations

import difflib
import math
from numbers import Integral

import numpy as np

from sim.units import format_bandwidth

LINKS: dict[str, dict] = {
    "1GbE": dict(
        bandwidth=1e9, latency=50e-6, transport="tcp",
        source="line rate: IEEE 802.3ab (1000BASE-T); latency: estimate, 25-100 us host to "
               "host in a rack over kernel TCP",
        note="TCP over 1500-byte frames carries 94% of the line rate as payload (1448 of "
             "1538 bytes on the wire)"),
    "10GbE": dict(
        bandwidth=1e10, latency=20e-6, transport="tcp",
        source="line rate: IEEE 802.3ae; latency: estimate, 10-50 us host to host over kernel TCP",
        note="the usual on-premise cluster network"),
    "25GbE": dict(
        bandwidth=2.5e10, latency=20e-6, transport="tcp",
        source="line rate: IEEE 802.3by; latency: estimate, 10-50 us host to host over kernel TCP",
        note="a common cloud VM NIC"),
    "100GbE": dict(
        bandwidth=1e11, latency=2e-6, transport="tcp",
        source="line rate: IEEE 802.3ba; latency: estimate, 1-3 us with RDMA (RoCE)",
        note="RDMA latency; over kernel TCP (the default transport) plan 10-30 us instead "
             "(network.latency)"),
    "IB-HDR": dict(
        bandwidth=2e11, latency=1e-6, transport="rdma",
        source="InfiniBand HDR: 4 lanes x 50 Gb/s; latency: estimate, about 1 us",
        note="A100-era training clusters"),
    "IB-NDR": dict(
        bandwidth=4e11, latency=1e-6, transport="rdma",
        source="InfiniBand NDR: 4 lanes x 100 Gb/s PAM4, NVIDIA DGX SuperPOD cabling guide, "
               "'NDR Overview' (docs.nvidia.com/dgx-superpod); latency: estimate, about 1 us",
        note="H100 clusters, typically one 400G port per GPU"),
    "NVLink4": dict(
        bandwidth=3.6e12, latency=936.25e-9, transport="fluid",
        source="NVIDIA H100: 18 NVLink links x 50 GB/s (both directions) = 900 GB/s, so "
               "450 GB/s per direction; latency: ASTRA-sim's calibrated HGX-H100 network config",
        note="inside one 8-GPU server, no TCP (transport 'fluid'); that ASTRA-sim config "
             "uses 400 GB/s as the effective rate (network.goodput = 0.89)"),
    "same-region": dict(
        bandwidth=1e10, latency=0.5e-3, transport="tcp",
        source="latency: AWS inter-AZ best-of-50 ping 0.25-3.37 ms RTT (xkyle.com, 'Measuring "
               "AWS Region and AZ Latency'), 1 ms RTT taken; bandwidth: estimate, top of the "
               "1-10 Gb/s usually provisioned per VM pair",
        note="two availability zones of one cloud region"),
    "cross-region": dict(
        bandwidth=5e9, latency=20e-3, transport="tcp",
        source="latency: Azure inter-region RTT 5-72 ms within North America (Azure network "
               "round-trip latency statistics, October 2019), 40 ms RTT taken; bandwidth: "
               "estimate, inside the 1-10 Gb/s usually provisioned per VM pair",
        note="set network.tcp_window (e.g. '4MiB'): at 40 ms RTT it caps a flow at 839 Mb/s"),
    "intercontinental": dict(
        bandwidth=1e9, latency=40e-3, transport="tcp",
        source="latency: estimate, 70-100 ms RTT US-Europe (fibre alone needs 56 ms for "
               "5,600 km at 5 us/km), 80 ms RTT taken; bandwidth: estimate, bottom of the "
               "1-10 Gb/s usually provisioned per VM pair",
        note="US-Asia is 150-250 ms RTT; with a 4 MiB TCP window one flow gets 419 Mb/s here"),
}

#: Links between the GPUs of one node (``network.intra``, topology "nodes"): bandwidth per GPU
#: and direction, latency one way GPU to GPU. NCCL's own protocol runs on them (no TCP).
INTRA: dict[str, dict] = {
    "nvlink2": dict(
        bandwidth=8 * 150e9, latency=1e-6,
        source="NVIDIA V100: 6 NVLink 2 links x 25 GB/s per direction = 150 GB/s (300 GB/s "
               "both ways), NVIDIA Tesla V100 datasheet; latency: estimate, about 1 us",
        note="DGX-1 / DGX-2 (V100)"),
    "nvlink3": dict(
        bandwidth=8 * 300e9, latency=1e-6,
        source="NVIDIA A100: 12 NVLink 3 links x 25 GB/s per direction = 300 GB/s (600 GB/s "
               "both ways), NVIDIA A100 datasheet; latency: estimate, about 1 us",
        note="DGX A100, HGX A100 through NVSwitch"),
    "nvlink4": dict(
        bandwidth=8 * 450e9, latency=936.25e-9,
        source="NVIDIA H100: 18 NVLink 4 links x 25 GB/s per direction = 450 GB/s (900 GB/s "
               "both ways), NVIDIA H100 datasheet; latency: ASTRA-sim's calibrated HGX-H100 "
               "network config",
        note="DGX H100, HGX H100 through NVSwitch"),
    "nvlink5": dict(
        bandwidth=8 * 900e9, latency=936.25e-9,
        source="NVIDIA B200: NVLink 5, 1.8 TB/s both ways per GPU = 900 GB/s per direction, "
               "NVIDIA Blackwell datasheet; latency: estimate, as NVLink 4",
        note="DGX B200, HGX B200"),
    "pcie3": dict(
        bandwidth=8 * 15.75e9, latency=1.5e-6,
        source="PCIe 3.0 x16: 8 GT/s x 16 lanes, 128b/130b coding = 15.75 GB/s per direction "
               "(PCI-SIG); latency: estimate, 1-2 us GPU to GPU through a PCIe switch",
        note="GPUs without NVLink, peer to peer over PCIe"),
    "pcie4": dict(
        bandwidth=8 * 31.5e9, latency=1.5e-6,
        source="PCIe 4.0 x16: 16 GT/s x 16 lanes = 31.5 GB/s per direction (PCI-SIG); latency: "
               "estimate, 1-2 us",
        note="e.g. A100 PCIe cards, L4/L40 nodes"),
    "pcie5": dict(
        bandwidth=8 * 63e9, latency=1.5e-6,
        source="PCIe 5.0 x16: 32 GT/s x 16 lanes = 63 GB/s per direction (PCI-SIG); latency: "
               "estimate, 1-2 us",
        note="e.g. H100 PCIe cards"),
}

MODELS: dict[str, dict] = {
    "resnet50": dict(
        params=25_557_032, step_time=0.104,
        source="params: torchvision ResNet50_Weights (num_params); step: NVIDIA "
               "DeepLearningExamples, PyTorch ResNet-50 v1.5 README, 2,470 img/s on one "
               "A100 80GB with AMP, so 256 images take 0.104 s",
        note="per GPU, 256 images per step; V100 with AMP is about 0.213 s"),
    "vit-b16": dict(
        params=86_567_656, step_time=0.49,
        source="params: ViT-B/16 at 224 px with a 1000-class head (patch embedding, 12 blocks "
               "of width 768, head); step: pytorch-image-models "
               "results/benchmark-train-amp-nchw-pt112-cu113-rtx3090.csv, 391 img/s, so 192 "
               "images take 0.49 s",
        note="RTX 3090 with AMP, 192 images per step; an A100 is roughly 2-3x faster (estimate)"),
    "gpt2-small": dict(
        params=124_439_808, step_time=0.576,
        source="params: GPT-2 (12 layers, width 768, 50,257-token vocabulary, 1024 positions, "
               "tied output embedding); step: karpathy/nanoGPT README and "
               "config/train_gpt2.py, 600,000 iterations in about 4 days on 8 A100 40GB, "
               "4 x 86,400 s / 600,000 = 0.576 s",
        note="each iteration is 491,520 tokens over 8 GPUs (61,440 per GPU)"),
    "gpt2-medium": dict(
        params=354_823_168, step_time=1.64,
        source="params: GPT-2 medium (24 layers, width 1024, same vocabulary and positions); "
               "step: estimate, gpt2-small's 0.576 s scaled by the parameter ratio 2.85 "
               "(training FLOPs ~ 6 x params x tokens) for the same tokens and hardware",
        note="not measured; replace compute.step_time with a measurement when you have one"),
    "gpt3-xl": dict(
        params=1_315_723_264, step_time=6.09,
        source="params: GPT-3 XL (Brown et al. 2020, table 2.1: 24 layers, width 2048), with "
               "GPT-2's 50,257-token vocabulary, 2,048 positions and a tied output embedding; "
               "step: estimate, gpt2-small's 0.576 s scaled by the parameter ratio 10.57 "
               "(training FLOPs ~ 6 x params x tokens) for the same tokens and hardware",
        note="the 1.3B-parameter class; not measured"),
}

DISTRIBUTIONS: dict[str, dict] = {
    # "lognormal": bandwidth = median * exp(sigma * Z), Z standard normal; latency uniform in
    # [latency_min, latency_max] (one way). "two-tier": round(slow_fraction * n) workers, at
    # random positions, get the slow link preset; the rest get the fast one.
    "wan": dict(
        kind="lognormal", median=10**9.5, sigma=math.log(10) / 4,
        latency_min=2.5e-3, latency_max=36e-3,
        source="bandwidth: estimate, 1-10 Gb/s usually provisioned per cloud VM pair across "
               "regions; latency: half of Azure's 5-72 ms inter-region RTT within North America",
        note="median sqrt(10) Gb/s and sigma ln(10)/4, so 95% of workers lie within 1-10 Gb/s "
             "(median / e^(2 sigma) to median * e^(2 sigma)); workers spread over regions"),
    "federated": dict(
        kind="lognormal", median=25e6, sigma=1.0,
        latency_min=5e-3, latency_max=50e-3,
        source="bandwidth: Ookla Speedtest Global Index, August 2020 (reported by TelecomTalk, "
               "2020-09-16): mean fixed-broadband upload 44.1 Mb/s worldwide; a lognormal "
               "with median 25 Mb/s and sigma 1 has mean 41 Mb/s; the spread is an estimate; "
               "latency: estimate, 10-100 ms RTT from a home to a cloud region",
        note="home uplinks: 95% within 3.4-185 Mb/s, from DSL to fibre; the slowest worker "
             "decides a synchronous step"),
    "mixed-dc": dict(
        kind="two-tier", fast="10GbE", slow="1GbE", slow_fraction=0.25,
        source="the 10GbE and 1GbE link presets; the quarter of old 1GbE hosts is an "
               "illustration, not a survey",
        note="a data centre mid-upgrade: exactly round(n/4) workers, at random positions, "
             "on 1GbE"),
}


def _lookup(kind: str, table: dict, name) -> dict:
    if name in table:
        return dict(table[name])
    close = difflib.get_close_matches(str(name), list(table), n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"unknown {kind} preset {name!r}{hint}; valid: {', '.join(table)}")


def link(name: str) -> dict:
    """A copy of link preset ``name``: bandwidth (bit/s), latency (s, one way), transport,
    source, note."""
    return _lookup("link", LINKS, name)


def intra(name: str) -> dict:
    """A copy of intra-node link preset ``name``: bandwidth (bit/s per GPU and direction),
    latency (s, one way), source, note."""
    return _lookup("intra-node link", INTRA, name)


def model(name: str) -> dict:
    """A copy of model preset ``name``: params (count), step_time (s), source, note."""
    return _lookup("model", MODELS, name)


def distribution(name: str) -> dict:
    """A copy of link distribution ``name`` (see DISTRIBUTIONS for the kinds and units)."""
    return _lookup("link distribution", DISTRIBUTIONS, name)


def draw_links(name: str, n_workers: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-worker links from distribution ``name``: (bandwidth bit/s, latency s one way), each
    shape (n_workers,). The same generator state gives the same links."""
    spec = distribution(name)
    if isinstance(n_workers, bool) or not isinstance(n_workers, Integral) or n_workers < 1:
        raise ValueError(f"n_workers={n_workers!r}: must be an integer >= 1")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng={rng!r}: must be a numpy.random.Generator")
    n = int(n_workers)
    if spec["kind"] == "lognormal":
        bandwidth = rng.lognormal(math.log(spec["median"]), spec["sigma"], n)
        latency = rng.uniform(spec["latency_min"], spec["latency_max"], n)
        return bandwidth, latency
    fast, slow = LINKS[spec["fast"]], LINKS[spec["slow"]]
    is_slow = np.zeros(n, dtype=bool)
    # floor(x + 0.5) rounds halves up, unlike round(), so n = 2 with a quarter gives 1 slow worker
    is_slow[rng.permutation(n)[:math.floor(spec["slow_fraction"] * n + 0.5)]] = True
    bandwidth = np.where(is_slow, slow["bandwidth"], fast["bandwidth"])
    latency = np.where(is_slow, slow["latency"], fast["latency"])
    return bandwidth, latency


def _seconds(t: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if t >= scale:
            return f"{t / scale:g} {unit}"
    return f"{t / 1e-9:g} ns"


def describe() -> list[str]:
    """Text lines for ``dlion-sim list presets``: every preset's name, values and source."""
    lines = ["links (network.preset; bandwidth per direction, latency one way, transport):"]
    for name, p in LINKS.items():
        rate, delay = format_bandwidth(p["bandwidth"]), _seconds(p["latency"])
        lines.append(f"  {name:17s} {rate:>10s}  {delay:>10s}  {p['transport']}")
        lines.append(f"  {'':17s} source: {p['source']}")
        lines.append(f"  {'':17s} note: {p['note']}")
    lines.append("intra-node links (network.intra, topology 'nodes'; per GPU and direction):")
    for name, p in INTRA.items():
        rate, delay = format_bandwidth(p["bandwidth"]), _seconds(p["latency"])
        lines.append(f"  {name:17s} {rate:>10s}  {delay:>10s}")
        lines.append(f"  {'':17s} source: {p['source']}")
        lines.append(f"  {'':17s} note: {p['note']}")
    lines.append("models (cluster.model; parameters, compute time per step):")
    for name, p in MODELS.items():
        lines.append(f"  {name:17s} {p['params'] / 1e6:>9.1f}M  {_seconds(p['step_time']):>10s}")
        lines.append(f"  {'':17s} source: {p['source']}")
        lines.append(f"  {'':17s} note: {p['note']}")
    lines.append("link distributions (network.links; drawn per worker from the run seed):")
    for name, p in DISTRIBUTIONS.items():
        if p["kind"] == "lognormal":
            values = (f"lognormal bandwidth, median {format_bandwidth(p['median'])}, "
                      f"sigma {p['sigma']:.3g}; latency uniform {_seconds(p['latency_min'])}"
                      f" to {_seconds(p['latency_max'])}")
        else:
            values = (f"{p['slow_fraction']:.0%} of workers on {p['slow']}, the rest on "
                      f"{p['fast']}")
        lines.append(f"  {name:17s} {values}")
        lines.append(f"  {'':17s} source: {p['source']}")
        lines.append(f"  {'':17s} note: {p['note']}")
    return lines
