"""The Keras-style summary, checked on MobileNet v1 against the paper's Table 1."""

from __future__ import annotations

import re

from edgecnn.models import create_model
from edgecnn.profile import format_summary, profile_model

# The paper's Table 1 as (filter shape, stride, output size): stem, then 13 dw/pw pairs.
TABLE_1 = [("3x3x3x32", 2, 112)]
_blocks = [(32, 64, 1, 112), (64, 128, 2, 56), (128, 128, 1, 56), (128, 256, 2, 28),
           (256, 256, 1, 28), (256, 512, 2, 14)] + [(512, 512, 1, 14)] * 5 + [
    (512, 1024, 2, 7), (1024, 1024, 1, 7)]
for cin, cout, stride, size in _blocks:
    TABLE_1 += [(f"3x3x{cin} dw", stride, size), (f"1x1x{cin}x{cout}", 1, size)]


def _summary() -> str:
    model = create_model("mobilenet_v1", device="meta")
    return format_summary(profile_model(model, 224), title="mobilenet_v1")


def test_mobilenet_v1_summary_lists_table_1_layer_by_layer():
    text = _summary()
    convs = re.findall(r"\(Conv2d (\S+(?: dw)?) /s(\d)\)\s+\(None, (\d+), (\d+), (\d+)\)", text)
    assert [(shape, int(s), int(h)) for shape, s, _, h, _ in convs] == TABLE_1
    assert "(Linear 1024x1000)" in text


def test_mobilenet_v1_totals_match_keras():
    # Keras' MobileNet(alpha=1.0) summary prints exactly these three totals.
    text = _summary()
    assert "Total params: 4,253,864" in text
    assert "Trainable params: 4,231,976" in text
    assert "Non-trainable params: 21,888" in text
    assert "Mult-adds (conv + linear): 568,740,352" in text


def test_summary_headers_are_keras_like():
    header = _summary().splitlines()[2]
    assert re.match(r"Layer \(type\)\s+Output Shape\s+Param #\s+MACs", header)
