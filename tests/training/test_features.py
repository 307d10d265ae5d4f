"""features.py (the backbone once per dataset) and hpo.py trials from its features channel, both run as
SageMaker runs them (toolkit-built argv and SM_* environment; trainhelpers.run_script).

The backbone is a ResNet18 state_dict the tests write themselves (a seeded random init): no download,
and a backbone the tests can rebuild with torchvision alone to recompute a feature independently.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image
from torchvision.transforms import functional as TF
from trainhelpers import FAST_HPS, JobResult, run_script, write_tar_shards

from dogclf import contract, metrics
from dogclf.model import FrozenBackboneClassifier, build_for_inference
from localcloud.sagemaker.runners.job_files import tar_directory
from tools.sample_data import write_sample_tree

pytestmark = pytest.mark.slow

DATASET_ID = "uploads/sample.zip#etag-1"
FRAMEWORK = "2.6.0"
MANIFEST = "s3://artifacts/datasets/abc/manifest.json"
CLASS_DIRS = ["001.Affenpinscher", "002.Afghan_hound", "003.Airedale_terrier", "004.Akita"]
CLASSES = [name.split(".", 1)[1] for name in CLASS_DIRS]
COUNTS = {"train": 160, "valid": 40, "test": 40}  # the sample_dataset fixture


def _weights(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def _features_hps(weights: Path, **overrides: object) -> dict[str, object]:
    hps: dict[str, object] = {
        "weights": str(weights),
        "image_size": 64,
        "batch_size": 50,  # not the trials' 32: the extraction batch must not matter
        "num_workers": 0,
        "seed": 5,  # the trials' seed
        "dataset_id": DATASET_ID,
        "framework_version": FRAMEWORK,
        "features_key": contract.features_key(DATASET_ID, str(weights), 64, FRAMEWORK),
    }
    return {**hps, **overrides}


def _channel(model_dir: Path, folder: Path) -> Path:
    """What the trial's features channel holds: the features job's model dir tarred as SageMaker
    (here: the local emulator's own tar) uploads it, downloaded into a folder."""
    folder.mkdir(parents=True)
    tar_directory(model_dir, folder / contract.MODEL_ARCHIVE)
    return folder


def _recorded(job: JobResult) -> dict:
    return json.loads((job.output_data_dir / contract.METRICS_FILE).read_text())


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    return _weights(tmp_path_factory.mktemp("weights") / "resnet18.pth", seed=11)


@pytest.fixture(scope="module")
def shards(tmp_path_factory, sample_dataset) -> dict[str, Path]:
    return write_tar_shards(sample_dataset, tmp_path_factory.mktemp("shards") / "data", members_per_shard=50)


@pytest.fixture(scope="module")
def features_job(tmp_path_factory, shards, weights_file) -> JobResult:
    result = run_script(
        "features.py", tmp_path_factory.mktemp("features-job"), _features_hps(weights_file), shards
    )
    assert result.returncode == 0, result.log
    return result


@pytest.fixture(scope="module")
def features_channel(tmp_path_factory, features_job) -> Path:
    return _channel(features_job.model_dir, tmp_path_factory.mktemp("channel") / "features")


@pytest.fixture(scope="module")
def trial_hps(weights_file) -> dict[str, object]:
    return {**FAST_HPS, "weights": str(weights_file), "epochs": 3, "seed": 5}


@pytest.fixture(scope="module")
def trial_from_features(tmp_path_factory, features_channel, trial_hps) -> JobResult:
    hps = {**trial_hps, "dataset_manifest": MANIFEST}
    result = run_script("hpo.py", tmp_path_factory.mktemp("trial-f"), hps, {"features": features_channel})
    assert result.returncode == 0, result.log
    return result


@pytest.fixture(scope="module")
def trial_from_images(tmp_path_factory, shards, trial_hps) -> JobResult:
    result = run_script("hpo.py", tmp_path_factory.mktemp("trial-i"), trial_hps, shards)
    assert result.returncode == 0, result.log
    return result


def test_features_job_writes_one_row_per_image_and_the_layouts_classes(features_job):
    names = sorted(path.name for path in features_job.model_dir.iterdir())
    expected = [contract.FEATURES_META_FILE, contract.FEATURES_HEAD_INIT_FILE, *(f"{s}.pt" for s in COUNTS)]
    assert names == sorted(expected)
    meta = json.loads((features_job.model_dir / contract.FEATURES_META_FILE).read_text())
    assert meta["classes"] == CLASSES and meta["class_dirs"] == CLASS_DIRS
    assert meta["counts"] == COUNTS and meta["dataset"]["images"] == COUNTS
    assert meta["format_version"] == contract.FEATURES_FORMAT_VERSION
    assert meta["features_key"] == contract.features_key(DATASET_ID, meta["weights"], 64, FRAMEWORK)
    assert (meta["image_size"], meta["framework_version"], meta["feature_dim"]) == (64, FRAMEWORK, 512)
    assert meta["torch_version"] == torch.__version__ and meta["backbone"] == "resnet18"
    assert meta["images_per_second"] > 0 and meta["skipped_images"] == dict.fromkeys(COUNTS, 0)
    for split, count in COUNTS.items():
        payload = torch.load(features_job.model_dir / f"{split}.pt", weights_only=True)
        assert payload["features"].dtype == torch.float32 and payload["features"].shape == (count, 512)
        assert payload["targets"].dtype == torch.int64
        # rows in class order: count / 4 images per class
        assert payload["targets"].tolist() == [c for c in range(4) for _ in range(count // 4)]
    assert "features train: 160/160 images" in features_job.stdout
    assert "features done: 240 images" in features_job.stdout


@pytest.mark.parametrize(("split", "row"), [("train", 0), ("test", 39)])
def test_a_feature_equals_an_independent_backbone_pass(
    features_job, sample_dataset, weights_file, split, row
):
    """torchvision's resnet18 with the same state_dict, on the same file, with the eval transform
    spelled out here (resize the short side to 64 * 256/224 = 73, centre crop 64, ImageNet stats)."""
    files = sorted(path for path in (sample_dataset / split).rglob("*") if path.is_file())
    assert len(files) == COUNTS[split]
    backbone = torchvision.models.resnet18()
    backbone.load_state_dict(torch.load(weights_file, weights_only=True))
    backbone.fc = torch.nn.Identity()
    backbone.eval()
    with Image.open(files[row]) as image:
        tensor = TF.to_tensor(TF.center_crop(TF.resize(image.convert("RGB"), 73), 64))
    tensor = TF.normalize(tensor, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    with torch.no_grad():
        expected = backbone(tensor.unsqueeze(0))[0]
    saved = torch.load(features_job.model_dir / f"{split}.pt", weights_only=True)["features"][row]
    assert torch.allclose(saved, expected, rtol=1e-4, atol=1e-5), (saved - expected).abs().max()


def test_trial_from_features_matches_a_trial_with_the_in_job_cache(trial_from_features, trial_from_images):
    """Same features (up to the extraction batch size, which changes only float summation order in the
    backbone, ~1e-6), same head init, same batches: the runs match to 1e-4 in every loss, and the
    accuracies (multiples of 1/40 or 1/160) are equal."""
    features, images = _recorded(trial_from_features), _recorded(trial_from_images)
    for key, value in images["final"].items():
        assert features["final"][key] == pytest.approx(value, abs=1e-4), key
    for from_features, from_images in zip(
        features["history"]["epochs"], images["history"]["epochs"], strict=True
    ):
        for split in ("train", "valid"):
            assert from_features[split]["loss"] == pytest.approx(from_images[split]["loss"], abs=1e-4)
            assert from_features[split]["accuracy"] == from_images[split]["accuracy"]
            assert from_features[split]["count"] == from_images[split]["count"]
    assert images["final"]["test:accuracy"] >= 0.6  # it learned: chance is 0.25
    assert features["feature_cache"] is True and features["dataset"]["images"] == COUNTS
    assert features["classes"] == images["classes"] == CLASSES
    # The same metric lines, which the tuner's objective and early stopping read.
    logged_f, logged_i = (
        metrics.parse_log(trial_from_features.stdout),
        metrics.parse_log(trial_from_images.stdout),
    )
    assert sorted(logged_f) == sorted(logged_i) and len(logged_f["valid:accuracy"]) == 3
    assert logged_f["valid:accuracy"] == logged_i["valid:accuracy"]
    # One backbone pass in the image trial; none in the features trial.
    assert "cached backbone features" in trial_from_images.stdout
    assert "cached backbone features" not in trial_from_features.stdout
    assert "backbone not built" in trial_from_features.stdout
    assert f"dataset manifest: {MANIFEST}" in trial_from_features.stdout
    assert "head initialised as the in-job path does for seed 5" in trial_from_features.stdout


def test_a_trial_with_another_seed_seeds_its_own_head(tmp_path, features_channel, trial_hps):
    result = run_script("hpo.py", tmp_path, {**trial_hps, "seed": 3}, {"features": features_channel})
    assert result.returncode == 0, result.log
    assert "head initialised from seed 3 alone (the features job's seed: 5)" in result.stdout
    assert _recorded(result)["final"]["test:accuracy"] >= 0.6


def test_trial_from_features_saves_a_head_only_model(trial_from_features, features_job):
    model_dir = trial_from_features.model_dir
    assert sorted(path.name for path in model_dir.iterdir()) == [
        "classes.json",
        "head.pth",
        "model_meta.json",
    ]
    meta = json.loads((model_dir / "model_meta.json").read_text())
    assert meta["head_only"] is True and meta["num_classes"] == 4 and meta["image_size"] == 64
    features_meta = json.loads((features_job.model_dir / contract.FEATURES_META_FILE).read_text())
    assert meta["features"]["features_key"] == features_meta["features_key"]
    state = torch.load(model_dir / "head.pth", weights_only=True)
    model: FrozenBackboneClassifier = build_for_inference(4)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert unexpected == [] and all(key.startswith("backbone.") for key in missing)
    assert all(key.startswith("head.") for key in state) and state["head.1.weight"].shape == (4, 512)


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("image_size", 96, "computed with image_size 64, but this trial has --image_size 96"),
        ("weights", "none", "but this trial has --weights 'none'"),
    ],
)
def test_features_for_other_settings_fail_permanently(
    tmp_path, features_channel, trial_hps, setting, value, message
):
    result = run_script("hpo.py", tmp_path, {**trial_hps, setting: value}, {"features": features_channel})
    assert result.returncode == 2, result.log
    assert "ERROR: FeaturesError: features in " in result.stderr and message in result.stderr
    assert "Traceback" not in result.stderr
    assert message in (tmp_path / "output" / "failure").read_text()
    assert not result.model_dir.exists() or not any(result.model_dir.iterdir())


def test_augment_with_only_a_features_channel_fails_clearly(tmp_path, features_channel, trial_hps):
    result = run_script("hpo.py", tmp_path, {**trial_hps, "augment": True}, {"features": features_channel})
    assert result.returncode == 2, result.log
    assert "augmentation needs the image channels" in result.stderr
    assert "augmentation needs the image channels" in (tmp_path / "output" / "failure").read_text()


def test_augment_with_features_and_images_trains_from_the_images(
    tmp_path, features_channel, shards, trial_hps
):
    channels = {**shards, "features": features_channel}
    result = run_script("hpo.py", tmp_path, {**trial_hps, "augment": True, "epochs": 1}, channels)
    assert result.returncode == 0, result.log
    assert "features channel ignored: --augment true trains from the images" in result.stdout
    recorded = _recorded(result)
    assert recorded["feature_cache"] is False and "features" not in recorded
    assert recorded["history"]["epochs"][0]["train"]["count"] == 160
    assert (result.model_dir / "model.pth").is_file()


def test_a_damaged_features_archive_fails_permanently(tmp_path, trial_hps):
    channel = tmp_path / "channel"
    channel.mkdir()
    (channel / contract.MODEL_ARCHIVE).write_bytes(b"not a tar at all")
    result = run_script("hpo.py", tmp_path / "job", trial_hps, {"features": channel})
    assert result.returncode == 2, result.log
    assert "ERROR: FeaturesError:" in result.stderr and "is not a readable tar archive" in result.stderr


def test_a_split_file_that_disagrees_with_features_json_fails(tmp_path, features_job, trial_hps):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    for path in features_job.model_dir.iterdir():
        (model_dir / path.name).write_bytes(path.read_bytes())
    payload = torch.load(model_dir / "valid.pt", weights_only=True)
    torch.save(
        {"features": payload["features"][:-1], "targets": payload["targets"][:-1]}, model_dir / "valid.pt"
    )
    result = run_script(
        "hpo.py", tmp_path / "job", trial_hps, {"features": _channel(model_dir, tmp_path / "ch")}
    )
    assert result.returncode == 2, result.log
    assert "valid.pt does not hold 40 rows of 512 float32 features" in result.stderr


def test_the_archive_and_its_unpacked_folder_read_the_same(features_job, features_channel, tmp_path):
    from dogclf.feature_files import read_features

    unpacked = tmp_path / "unpacked"
    with tarfile.open(features_channel / contract.MODEL_ARCHIVE) as tar:
        tar.extractall(unpacked, filter="data")
    dot_archive = tmp_path / "dot" / "model.tar.gz"  # members named ./<file>, as `tar -C dir .` writes
    dot_archive.parent.mkdir()
    with tarfile.open(dot_archive, "w:gz") as tar:
        tar.add(features_job.model_dir, arcname=".")
    sets = [read_features(location) for location in (features_channel, unpacked, dot_archive)]
    for other in sets[1:]:
        assert other.meta == sets[0].meta
        for split, (features, targets) in sets[0].splits.items():
            assert torch.equal(other.splits[split][0], features) and torch.equal(
                other.splits[split][1], targets
            )


def test_undecodable_images_are_skipped_then_fatal_as_in_hpo(tmp_path, weights_file):
    data = write_sample_tree(
        tmp_path / "data", num_classes=2, train_per_class=4, valid_per_class=1, test_per_class=1
    )
    bad = sorted((data / "train" / "001.Affenpinscher").iterdir())
    bad[0].write_bytes(b"garbage")
    hps = _features_hps(weights_file, features_key="", max_bad_image_fraction=0.2)
    one_bad = run_script("features.py", tmp_path / "one", hps, {"training": data})
    assert one_bad.returncode == 0, one_bad.log
    assert "WARNING: skipping undecodable image in train" in one_bad.stdout
    meta = json.loads((one_bad.model_dir / contract.FEATURES_META_FILE).read_text())
    assert meta["counts"]["train"] == 7 and meta["dataset"]["images"]["train"] == 8
    assert meta["skipped_images"] == {"train": 1, "valid": 0, "test": 0}
    bad[1].write_bytes(b"garbage")
    two_bad = run_script("features.py", tmp_path / "two", hps, {"training": data})
    assert two_bad.returncode == 2, two_bad.log
    assert "ERROR: BadImagesError: 2 of 8 images in train are undecodable" in two_bad.stderr
    assert "BadImagesError" in (tmp_path / "two" / "output" / "failure").read_text()


def test_a_features_key_that_is_not_its_inputs_key_fails(tmp_path, shards, weights_file):
    hps = _features_hps(weights_file, features_key="0123456789ab")
    result = run_script("features.py", tmp_path, hps, shards)
    assert result.returncode == 2, result.log
    assert "FeaturesError: --features_key 0123456789ab is not the key of dataset" in result.stderr


def test_the_key_is_checked_against_the_content_id_when_there_is_one(tmp_path, shards, weights_file):
    """A re-upload of the same images reuses their features: the pipeline keys features on the images'
    content id, not the upload's id."""
    content = "sha256:" + "ab" * 32
    by_dataset = _features_hps(weights_file, content_id=content)  # the key of the dataset id: refused
    result = run_script("features.py", tmp_path / "one", by_dataset, shards)
    assert result.returncode == 2, result.log
    assert f"is not the key of dataset {content!r}" in result.stderr
