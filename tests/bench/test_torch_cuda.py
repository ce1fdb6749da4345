"""The torch-CUDA baseline: variant definitions everywhere, real timing where a GPU is."""

from __future__ import annotations

import pytest
import torch

from edgecnn.bench.torch_cuda import VARIANTS, prepare, time_cuda, variant
from edgecnn.errors import EdgeCNNError
from edgecnn.models import create_model


def test_variants():
    assert [(v.half, v.channels_last, v.compile) for v in map(variant, VARIANTS)] == [
        (False, False, False), (True, False, False), (True, True, False), (True, True, True)]
    with pytest.raises(EdgeCNNError, match="unknown torch-CUDA variant 'int8'"):
        variant("int8")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_without_a_gpu_the_benchmark_says_so():
    with pytest.raises(EdgeCNNError, match="needs a CUDA GPU; none is visible"):
        prepare(create_model("resnet20"), variant("eager_fp32"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible)")
@pytest.mark.parametrize("name", ["eager_fp32", "channels_last_fp16"])
def test_cuda_event_timing_on_the_gpu(name):
    spec = variant(name)
    stats = time_cuda(prepare(create_model("resnet20"), spec), spec, 8, 32, warmup=3,
                      iterations=10)
    assert stats.iterations == 10 and 0 < stats.p50_ms < 1000 and stats.throughput > 0
