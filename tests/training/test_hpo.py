"""hpo.py run as SageMaker runs it: toolkit-built argv and SM_* environment."""

from __future__ import annotations

import json

import pytest
from trainhelpers import FAST_HPS, run_script, write_tar_shards

from dogclf import metrics
from tools.sample_data import write_sample_tree

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hpo_job(tmp_path_factory, sample_dataset):
    """One tuning trial on the single 'training' channel (dataset inside a top-level folder)."""
    base = tmp_path_factory.mktemp("hpo-job")
    hps = {**FAST_HPS, "epochs": 3}
    result = run_script("hpo.py", base, hps, {"training": sample_dataset.parent})
    assert result.returncode == 0, result.log
    return result


def test_toolkit_argv_uses_hyperparameter_names_unchanged(hpo_job):
    assert "--learning_rate" in hpo_job.argv and "--batch_size" in hpo_job.argv
    assert hpo_job.argv[hpo_job.argv.index("--augment") + 1] == "False"  # toolkit spelling of a JSON false
    assert hpo_job.env["SM_CHANNEL_TRAINING"].endswith("input/data/training")


def test_artifacts_in_model_dir(hpo_job):
    model_dir = hpo_job.model_dir
    assert sorted(p.name for p in model_dir.iterdir()) == [
        "classes.json",
        "code",
        "model.pth",
        "model_meta.json",
    ]
    assert json.loads((model_dir / "classes.json").read_text()) == [
        "Affenpinscher",
        "Afghan_hound",
        "Airedale_terrier",
        "Akita",
    ]
    meta = json.loads((model_dir / "model_meta.json").read_text())
    assert meta["arch"] == "resnet18" and meta["image_size"] == 64 and meta["num_classes"] == 4
    assert meta["hyperparameters"]["learning_rate"] == 0.001
    code = model_dir / "code"
    assert sorted(p.name for p in code.iterdir()) == ["dogclf", "inference.py"]
    assert (code / "dogclf" / "model.py").is_file() and (
        code / "dogclf" / "metric_definitions.json"
    ).is_file()
    assert not list(code.rglob("requirements*.txt")) and not list(code.rglob("__pycache__"))


def test_metric_lines_match_the_shared_regexes(hpo_job):
    found = metrics.parse_log(hpo_job.stdout)
    assert len(found["valid:accuracy"]) == 3 and len(found["train:loss"]) == 3
    assert len(found["epoch:seconds"]) == 3 and len(found["test:accuracy"]) == 1
    recorded = json.loads((hpo_job.output_data_dir / "metrics.json").read_text())
    # The final value SageMaker records (last match) is the value the run computed.
    assert found["valid:accuracy"][-1] == pytest.approx(recorded["final"]["valid:accuracy"], abs=1e-5)
    assert found["test:accuracy"][-1] == pytest.approx(recorded["final"]["test:accuracy"], abs=1e-5)
    assert recorded["feature_cache"] is True
    assert recorded["dataset"]["images"] == {"train": 160, "valid": 40, "test": 40}


def test_learning_happens_well_above_chance(hpo_job):
    recorded = json.loads((hpo_job.output_data_dir / "metrics.json").read_text())
    assert recorded["final"]["test:accuracy"] >= 0.6  # chance is 0.25 with 4 classes
    losses = [epoch["train"]["loss"] for epoch in recorded["history"]["epochs"]]
    assert losses[-1] < losses[0]


def test_separate_split_channels_with_augmentation(tmp_path, sample_dataset):
    """SM_CHANNEL_TRAIN/VALID/TEST, --augment true (per-epoch forward passes, no feature cache)."""
    channels = {split: sample_dataset / split for split in ("train", "valid", "test")}
    hps = {**FAST_HPS, "epochs": 1, "augment": True}
    result = run_script("hpo.py", tmp_path, hps, channels)
    assert result.returncode == 0, result.log
    recorded = json.loads((result.output_data_dir / "metrics.json").read_text())
    assert recorded["feature_cache"] is False
    assert recorded["history"]["epochs"][0]["train"]["count"] == 160
    assert "cached backbone features" not in result.stdout


def test_one_epoch_from_tar_shard_channels(tmp_path, sample_dataset):
    """SM_CHANNEL_TRAIN/VALID/TEST holding tar shards, as ingest writes them (no class folders)."""
    channels = write_tar_shards(sample_dataset, tmp_path / "shards", members_per_shard=50)
    result = run_script("hpo.py", tmp_path / "job", {**FAST_HPS, "epochs": 1}, channels)
    assert result.returncode == 0, result.log
    train_channel = result.base_dir / "input" / "data" / "train"
    assert sorted(path.name for path in train_channel.iterdir()) == [f"train-0000{n}.tar" for n in range(4)]
    recorded = json.loads((result.output_data_dir / "metrics.json").read_text())
    assert recorded["dataset"]["images"] == {"train": 160, "valid": 40, "test": 40}
    assert recorded["history"]["epochs"][0]["train"]["count"] == 160
    assert recorded["final"]["test:accuracy"] >= 0.4  # chance is 0.25: the labels came through
    assert json.loads((result.model_dir / "classes.json").read_text()) == [
        "Affenpinscher",
        "Afghan_hound",
        "Airedale_terrier",
        "Akita",
    ]


def test_bad_layout_fails_with_a_clear_error(tmp_path):
    data = write_sample_tree(
        tmp_path / "data", num_classes=2, train_per_class=2, valid_per_class=1, test_per_class=1
    )
    (data / "valid" / "002.Afghan_hound" / "Afghan_hound_valid_00000.jpg").unlink(missing_ok=True)
    for leftover in (data / "valid" / "002.Afghan_hound").iterdir():
        leftover.unlink()
    result = run_script("hpo.py", tmp_path / "job", FAST_HPS, {"training": data})
    assert result.returncode == 2
    assert "ERROR: DatasetLayoutError: empty class folder(s) in valid: 002.Afghan_hound" in result.stderr
    assert "Traceback" not in result.stderr
    failure = (tmp_path / "job" / "output" / "failure").read_text()
    assert "empty class folder" in failure
    assert not (result.model_dir / "model.pth").exists()


@pytest.mark.parametrize("augment", [False, True], ids=["feature-cache", "per-epoch-forward"])
def test_too_many_undecodable_images_fail_clearly(tmp_path, augment):
    data = write_sample_tree(
        tmp_path / "data", num_classes=2, train_per_class=4, valid_per_class=1, test_per_class=1
    )
    for path in list((data / "train" / "001.Affenpinscher").iterdir())[:2]:
        path.write_bytes(b"garbage")
    result = run_script("hpo.py", tmp_path / "job", {**FAST_HPS, "augment": augment}, {"training": data})
    assert result.returncode == 2, result.log
    assert "WARNING: skipping undecodable image in train" in result.stdout
    assert "BadImagesError: 2 of 8 images in train are undecodable" in result.stderr


def test_imagenet_weights_offline_is_a_clear_error(tmp_path, sample_dataset):
    # A proxy on a closed local port makes the download fail fast without any traffic leaving the host.
    offline = {
        "TORCH_HOME": str(tmp_path / "torch-home"),
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9",
        "NO_PROXY": "",
        "no_proxy": "",
    }
    hps = {**FAST_HPS, "weights": "imagenet"}
    result = run_script("hpo.py", tmp_path / "job", hps, {"training": sample_dataset}, extra_env=offline)
    assert result.returncode == 2, result.log
    assert "WeightsUnavailableError: could not download the ImageNet ResNet18 weights" in result.stderr
    assert "--weights none" in result.stderr


def test_weights_from_a_state_dict_file(tmp_path, sample_dataset):
    import torch
    import torchvision

    weights = tmp_path / "resnet18.pth"  # a full resnet18 state_dict, fc included (it is replaced)
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    hps = {**FAST_HPS, "epochs": 1, "weights": str(weights)}
    assert run_script("hpo.py", tmp_path / "ok", hps, {"training": sample_dataset}).returncode == 0


def test_bad_weights_files_are_clear_errors(tmp_path):
    import torch

    from dogclf.model import WeightsUnavailableError, load_backbone

    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(WeightsUnavailableError, match="not a loadable state_dict"):
        load_backbone(str(tmp_path / "junk.pth"))
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(WeightsUnavailableError, match="not a resnet18 state_dict"):
        load_backbone(str(tmp_path / "other.pth"))
    with pytest.raises(WeightsUnavailableError, match="expected imagenet, none or an existing file"):
        load_backbone("imagenet21k")
