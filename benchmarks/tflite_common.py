"""Helpers shared by the LiteRT benchmarks (not a benchmark itself).

- :func:`pt2e_int8`: the alternative full-INT8 route, litert-torch's PT2E quantizer (torchao
  ``prepare_pt2e`` / ``convert_pt2e`` with litert-torch's symmetric per-channel config, then
  ``litert_torch.convert(..., quant_config=...)``), as litert-torch's own tests do it. edgecnn's
  library uses litert-quantizer; this route exists only to measure the choice.
- :func:`recalibrated_random_model`: latency does not depend on weight values, but full-INT8
  delegation does depend on activation ranges (XNNPACK refuses an int8 ADD whose input/output
  scale ratio is below 1/1024). A randomly initialised network with BatchNorm's default
  statistics (mean 0, var 1) shrinks its activations layer by layer (MobileNet v3-Large: int8
  scales of the last hard-swish inputs near 1e-11, so 19 of its int8 ADDs fell out of XNNPACK),
  which no trained network does. Re-estimating
  the BatchNorm statistics on real images gives the activations trained-like ranges, so random
  weights stand in for trained ones in a latency measurement.
"""

from __future__ import annotations

import numpy as np
import torch

from edgecnn.data.eval_batches import normalize_nchw


def normalised(images: np.ndarray, model: torch.nn.Module) -> np.ndarray:
    return normalize_nchw(images, model.card.mean, model.card.std)


def recalibrated_random_model(name: str, images: np.ndarray, *, seed: int = 0,
                              **options) -> torch.nn.Module:
    from edgecnn.models import create_model

    torch.manual_seed(seed)
    model = create_model(name, **options)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over every batch seen
    model.train()
    x = normalised(images, model)
    with torch.no_grad():
        for start in range(0, len(x), 16):
            model(torch.from_numpy(x[start:start + 16]))
    return model.eval()


def pt2e_int8(model: torch.nn.Module, resolution: int, calibration: np.ndarray) -> bytes:
    """Full-INT8 .tflite through PT2E; ``calibration`` is normalised NCHW float32."""
    import litert_torch
    from litert_torch.quantize import pt2e_quantizer, quant_config
    from torchao.quantization.pt2e import quantize_pt2e

    sample = (torch.zeros(1, model.card.in_chans, resolution, resolution),)
    exported = torch.export.export(model.eval(), sample).module()
    quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True))
    prepared = quantize_pt2e.prepare_pt2e(exported, quantizer)
    with torch.no_grad():
        for i in range(len(calibration)):  # exported for batch 1
            prepared(torch.from_numpy(calibration[i:i + 1]))
    converted = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
    edge = litert_torch.convert(converted, sample,
                                quant_config=quant_config.QuantConfig(pt2e_quantizer=quantizer))
    return bytes(edge.model_content())
