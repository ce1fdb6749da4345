"""A Keras-style text summary of a :class:`ModelProfile`."""

from __future__ import annotations

from edgecnn.profile.profiler import ModelProfile

HEADERS = ("Layer (type)", "Output Shape", "Param #", "MACs")


def human(n: float, unit: str = "") -> str:
    """1234567 -> '1.23 M'; keeps three significant figures for tables."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= factor:
            return f"{n / factor:.3g} {suffix}{unit}"
    return f"{n:.0f} {unit}".rstrip()


def human_bytes(n: float) -> str:
    for factor, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= factor:
            return f"{n / factor:.2f} {suffix}"
    return f"{n:.0f} B"


def format_summary(profile: ModelProfile, title: str = "") -> str:
    """One row per layer that has parameters or an output, then the totals, as Keras prints."""
    rows = [
        (f"{layer.name} ({layer.type})",
         str((None, *layer.output_shape[1:])) if layer.output_shape else "-",
         f"{layer.params + layer.buffers:,}", f"{layer.macs:,}")
        for layer in profile.layers
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADERS)]
    total_width = sum(widths) + 3 * (len(widths) - 1)

    def line(cells: tuple[str, ...]) -> str:
        left = [c.ljust(w) for c, w in zip(cells[:2], widths[:2], strict=True)]
        right = [c.rjust(w) for c, w in zip(cells[2:], widths[2:], strict=True)]
        return "   ".join(left + right).rstrip()

    out = []
    if title:
        out.append(title)
    out += ["=" * total_width, line(HEADERS), "=" * total_width]
    out += [line(r) for r in rows]
    out.append("=" * total_width)
    out += [
        f"Total params: {profile.total_params:,}",
        f"Trainable params: {profile.trainable_params:,}",
        f"Non-trainable params: {profile.non_trainable_params:,}",
        f"Mult-adds (conv + linear): {profile.macs:,} ({human(profile.macs)})",
        f"Input: {profile.input_shape[1:]}; weights {human_bytes(profile.weight_bytes)} (FP32); "
        f"activations {human_bytes(profile.activation_bytes)} written, largest "
        f"{human_bytes(profile.peak_activation_bytes)}",
        "_" * total_width,
    ]
    return "\n".join(out)
