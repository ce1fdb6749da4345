"""The command line as a user meets it: output, exit codes, one-line errors."""

from __future__ import annotations

import json

import pytest

from edgecnn.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_models_json_lists_every_architecture(capsys):
    code, out, _ = run(capsys, "models", "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) >= 35
    assert {"name", "family", "params", "macs", "resolution"} <= set(rows[0])
    by_name = {r["name"]: r for r in rows}
    assert by_name["resnet50"]["params"] == 25_557_032
    assert by_name["mobilenet_v1"]["macs"] == 568_740_352
    assert by_name["efficientnet_b3"]["resolution"] == 300


def test_models_table_for_one_family(capsys):
    code, out, _ = run(capsys, "models", "--family", "densenet")
    assert code == 0
    assert "densenet121" in out and "resnet50" not in out
    assert "5 architectures" in out


def test_summary_with_options(capsys):
    code, out, _ = run(capsys, "summary", "mobilenet_v2", "--resolution", "160",
                       "--num-classes", "10", "-o", "width_mult=0.5")
    assert code == 0
    assert '"mobilenet_v2" at 160x160' in out
    assert "(Linear 1280x10)" in out


def test_summary_separable_and_cifar_stem(capsys):
    code, out, _ = run(capsys, "summary", "resnet18", "--cifar-stem", "--separable", "depthwise")
    assert code == 0
    assert "at 32x32" in out and "layer1.0.conv1.dw" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["summary", "resnet5O"], "unknown architecture 'resnet5O'; did you mean resnet56, resnet50"),
    (["models", "--family", "vgg"], "unknown model family 'vgg'; valid: resnet"),
    (["summary", "resnet18", "-o", "depth"], "must look like key=value"),
    (["summary", "mobilenet_v2", "-o", "depth_mult=2"], "unknown option(s) depth_mult"),
    (["summary", "resnet18", "--resolution", "0"], "resolution must be positive"),
    (["summary", "resnet18", "--num-classes", "0"], "num_classes must be >= 1"),
])
def test_user_errors_exit_2_with_one_line(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "models" in out and "summary" in out


def test_eval_prints_top1_top5_and_classes(capsys, tiny_cifar_folder, shared):
    weights = shared / "weights" / "cifar10-resnet" / "resnet20-12fca82f.th"
    code, out, _ = run(capsys, "eval", "resnet20", "--weights", str(weights), "--data",
                       str(tiny_cifar_folder), "--split", "test", "--batch-size", "7")
    assert code == 0
    assert "100 images, 32x32, batch 7" in out
    assert "top-1 " in out and "top-5 " in out and "airplane" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "recipes/resnet20_cifar10.yaml", "--set", "data.dataset=/no/such"],
     "dataset '/no/such' is neither a known name nor an existing path"),
    (["train", "recipes/resnet20_cifar10.yaml", "--set", "train.epochs=0"],
     "train.epochs: Input should be greater than or equal to 1"),
    (["eval", "resnet20", "--weights", "/no/weights.th"], "weights file /no/weights.th does not"),
])
def test_train_and_eval_errors_leave_no_run_directory(capsys, tmp_path, argv, message):
    from edgecnn.settings import REPO_ROOT

    argv = [str(REPO_ROOT / a) if a.startswith("recipes/") else a for a in argv]
    out_dir = tmp_path / "run"
    if argv[0] == "train":
        argv += ["--out", str(out_dir)]
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err
    assert not out_dir.exists()


def test_edgecnn_debug_prints_the_cause_behind_the_one_line_message(tmp_path, monkeypatch, capsys):
    from edgecnn.cli import main

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    assert main(["bench", str(bad)]) == 2
    plain = capsys.readouterr().err
    assert plain.startswith("edgecnn: error:") and "Traceback" not in plain
    monkeypatch.setenv("EDGECNN_DEBUG", "1")
    assert main(["bench", str(bad)]) == 2
    debug = capsys.readouterr().err
    assert debug.startswith(plain.splitlines()[0])
    # the runtime's own exception, kept as the cause
    assert "Traceback" in debug and "The above exception was the direct cause" in debug
