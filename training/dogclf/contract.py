"""The facts that training, the Lambda functions, the local emulator and the CLI share: defined once.

Standard library only: the Lambda functions import this module from the training-code layer
(``TRAINING_CODE_DIR``, /opt in Lambda), the local cloud and the CLI from ``training/``. Anything
written here must not be repeated elsewhere; import it instead.
"""

from __future__ import annotations

import hashlib
import re

# --- Debugger rules --------------------------------------------------------------------------------
# The five rules of the profiled job, by RuleConfigurationName (AWS's built-in rule names).
VANISHING_GRADIENT = "VanishingGradient"
OVERFIT = "Overfit"
OVERTRAINING = "Overtraining"
POOR_WEIGHT_INITIALIZATION = "PoorWeightInitialization"
LOSS_NOT_DECREASING = "LossNotDecreasing"
RULE_NAMES: tuple[str, ...] = (
    VANISHING_GRADIENT,
    OVERFIT,
    OVERTRAINING,
    POOR_WEIGHT_INITIALIZATION,
    LOSS_NOT_DECREASING,
)
# builtin mode: RuleParameters.rule_to_invoke of each rule (smdebug_rules' names).
RULE_TO_INVOKE: dict[str, str] = {
    VANISHING_GRADIENT: "VanishingGradient",
    OVERFIT: "Overfit",
    OVERTRAINING: "Overtraining",
    POOR_WEIGHT_INITIALIZATION: "PoorWeightInitialization",
    LOSS_NOT_DECREASING: "LossNotDecreasing",
}
# Rules that block deployment unless their verdict is NO_ISSUES_FOUND, unless the stack says otherwise
# (template parameter GateBlockingRules has the same default; tests/template/test_contract_defaults.py).
DEFAULT_BLOCKING_RULES: tuple[str, ...] = (
    VANISHING_GRADIENT,
    POOR_WEIGHT_INITIALIZATION,
    LOSS_NOT_DECREASING,
)

# RuleEvaluationStatus values, as DescribeTrainingJob reports them.
ISSUES_FOUND = "IssuesFound"
NO_ISSUES_FOUND = "NoIssuesFound"
ERROR = "Error"
IN_PROGRESS = "InProgress"
STOPPED = "Stopped"

# In-script verdicts: a rule that evaluated on fewer than MIN_RULE_STEPS saved steps has not passed.
# It is reported as RuleEvaluationStatus ERROR with StatusDetails starting NOT_ENOUGH_DATA, and every
# verdict in rule_verdicts.json carries STEPS_EVALUATED_KEY (how many saved steps the rule read).
MIN_RULE_STEPS = 20
NOT_ENOUGH_DATA = "not enough data: "
STEPS_EVALUATED_KEY = "StepsEvaluated"
# ...and what it judged, so that a reader tells a real problem from a noisy one: the figure (e.g. an
# epoch's mean loss and its change), the condition it was held against, the saved steps it read.
FIGURE_KEY = "Figure"
THRESHOLD_KEY = "Threshold"
STEP_RANGE_KEY = "StepRange"
# The PROFILER_REPORT_RULE entry of rule_verdicts.json lists the profiler rules that triggered
# (names from PROFILER_RULE_NAMES) under this key; its status is ISSUES_FOUND when the list is not empty.
PROFILER_FINDINGS_KEY = "IssuesFound"

# The profiler report and the single-instance rules of SageMaker's ProfilerReport it covers.
PROFILER_REPORT_RULE = "ProfilerReport"
PROFILER_RULE_NAMES: tuple[str, ...] = (
    "BatchSize",
    "CPUBottleneck",
    "Dataloader",
    "GPUMemoryIncrease",
    "IOBottleneck",
    "LowGPUUtilization",
    "MaxInitializationTime",
    "OverallSystemUsage",
    "StepOutlier",
)

# DebuggerMode template parameter: in-script (default; no Debugger service) or builtin.
DEBUGGER_MODE_IN_SCRIPT = "in-script"
DEBUGGER_MODE_BUILTIN = "builtin"
DEBUGGER_MODES: tuple[str, ...] = (DEBUGGER_MODE_IN_SCRIPT, DEBUGGER_MODE_BUILTIN)
DEFAULT_DEBUGGER_MODE = DEBUGGER_MODE_IN_SCRIPT

# --- Images ---------------------------------------------------------------------------------------
# One pixel limit for ingest, training and serving: 40 MP is far above any dataset photo (dogImages
# tops out near 20 MP) and far below what lets a small compressed file exhaust memory.
MAX_IMAGE_PIXELS = 40_000_000
MAX_IMAGE_PIXELS_ENV = "DOGCLF_MAX_IMAGE_PIXELS"  # serving-side override


def eval_resize_size(image_size: int) -> int:
    """Short side the eval preset resizes an image to before centre-cropping ``image_size``
    (torchvision's 256/224 ratio). Classify downscales large images no further than this."""
    return round(image_size * 256 / 224)


# --- Backbone weights ------------------------------------------------------------------------------
# torchvision's ResNet18_Weights.IMAGENET1K_V1.url (model.load_backbone's "imagenet"): the local demo,
# which has no torch, checks torch's hub cache for this file (tests/training checks it against torchvision).
RESNET18_IMAGENET_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"

# --- Artifacts -------------------------------------------------------------------------------------
# Files train_model.py / hpo.py write to SM_OUTPUT_DATA_DIR (uploaded as output.tar.gz).
METRICS_FILE = "metrics.json"
RULE_VERDICTS_FILE = "rule_verdicts.json"
PROFILER_REPORT_FILE = "profiler-report.html"
LOSS_PLOT_FILE = "loss.png"
REPORT_FILES: tuple[str, ...] = (PROFILER_REPORT_FILE, LOSS_PLOT_FILE, RULE_VERDICTS_FILE, METRICS_FILE)
# Archives SageMaker uploads under <S3OutputPath>/<job>/output/.
MODEL_ARCHIVE = "model.tar.gz"
OUTPUT_ARCHIVE = "output.tar.gz"
# Where builtin mode's ProfilerReport rule writes its HTML, below <S3OutputPath>/<job>/.
PROFILER_REPORT_RULE_OUTPUT = f"rule-output/{PROFILER_REPORT_RULE}/profiler-output/{PROFILER_REPORT_FILE}"


def job_output_key(output_prefix: str, job_name: str, archive: str) -> str:
    """Key of ``archive`` (model.tar.gz / output.tar.gz) of a job whose S3OutputPath key prefix is given."""
    prefix = output_prefix.strip("/")
    return f"{prefix}/{job_name}/output/{archive}" if prefix else f"{job_name}/output/{archive}"


# --- Features stage --------------------------------------------------------------------------------
# features.py (a training job of its own) runs the frozen backbone once per dataset and writes, to
# SM_MODEL_DIR (so into its model.tar.gz), one FEATURES_SPLIT_FILE per split plus FEATURES_META_FILE.
# Tuning trials (hpo.py) get that model.tar.gz as the FEATURES_CHANNEL channel and train the head only.
FEATURES_PROGRAM = "features.py"
FEATURES_CHANNEL = "features"
FEATURES_META_FILE = "features.json"  # key, dataset_id, weights, image_size, framework, classes, counts
FEATURES_SPLIT_FILE = "{split}.pt"  # torch.save({"features": float32 [N, D], "targets": int64 [N]})
# The head as hpo.py/train_model.py initialise it for the features job's --seed (the trials' seed):
# torch.save(state_dict of the head). A trial with that seed starts from it, as the in-job path does.
FEATURES_HEAD_INIT_FILE = "head_init.pt"
FEATURES_FORMAT_VERSION = 1  # bump when the files above change shape: it is part of the cache key
FEATURES_PREFIX = "features"  # s3://<artifacts>/features/<features key>/<job>/output/model.tar.gz
# Environment for the features job and the tuning trials (never the profiled job, which uses smdebug):
# unless USE_SMDEBUG is "0", the training toolkit imports smdebug in its own process to classify
# errors, about 3 s of CPU per job (measured: 3.4 s vs 0.7 s user for a do-nothing script), more than
# a trial from features spends training. Neither script uses smdebug.
NO_SMDEBUG_ENVIRONMENT: dict[str, str] = {"USE_SMDEBUG": "0"}


def features_key(dataset_id: str, weights: str, image_size: int, framework_version: str) -> str:
    """Cache key of a dataset's backbone features: the same dataset, weights, image size and framework
    version give the same key (and job name), so a second tuning run reuses the features."""
    return _short_hash(f"{dataset_id}|{weights}|{image_size}|{framework_version}|v{FEATURES_FORMAT_VERSION}")


def features_output_prefix(features_key_: str) -> str:
    """S3OutputPath key prefix of the features job for ``features_key_`` (artifacts bucket)."""
    return f"{FEATURES_PREFIX}/{features_key_}"


# --- Job and resource names ------------------------------------------------------------------------
TUNING_JOB_NAME_MAX = 32  # CreateHyperParameterTuningJob's limit
TRAINING_JOB_NAME_MAX = 63
TUNING_INFIX = "-hpo-"
TRAINING_INFIX = "-train-"
FEATURES_INFIX = "-feat-"
ENDPOINT_SUFFIX = "-endpoint"
ENDPOINT_CONFIG_SUFFIX = "-cfg"
_HASH_CHARS = 12


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_HASH_CHARS]


def tuning_job_name(prefix: str, dataset_id: str) -> str:
    """<prefix>-hpo-<12 hex of the dataset id>: deterministic, within SageMaker's 32 characters."""
    name = f"{prefix}{TUNING_INFIX}{_short_hash(dataset_id)}"
    if len(name) > TUNING_JOB_NAME_MAX:
        raise ValueError(f"tuning job name {name!r} is over {TUNING_JOB_NAME_MAX} characters")
    return name


def training_job_name(prefix: str, tuning_job: str) -> str:
    """<prefix>-train-<12 hex of the tuning job>: never matches the tuner's own trial names."""
    name = f"{prefix}{TRAINING_INFIX}{_short_hash(tuning_job)}"
    if len(name) > TRAINING_JOB_NAME_MAX:
        raise ValueError(f"training job name {name!r} is over {TRAINING_JOB_NAME_MAX} characters")
    return name


def features_job_name(prefix: str, features_key_: str) -> str:
    """<prefix>-feat-<features key>: one features job per cache key."""
    name = f"{prefix}{FEATURES_INFIX}{features_key_}"
    if len(name) > TRAINING_JOB_NAME_MAX:
        raise ValueError(f"features job name {name!r} is over {TRAINING_JOB_NAME_MAX} characters")
    return name


def endpoint_name(prefix: str) -> str:
    return f"{prefix}{ENDPOINT_SUFFIX}"


def endpoint_config_name(training_job: str) -> str:
    return f"{training_job}{ENDPOINT_CONFIG_SUFFIX}"


def is_pipeline_tuning_job(name: str, prefix: str) -> bool:
    """A tuning job this pipeline started (not another pipeline's, not a trial)."""
    return re.fullmatch(rf"{re.escape(prefix)}{TUNING_INFIX}[0-9a-f]{{{_HASH_CHARS}}}", name) is not None


def is_pipeline_training_job(name: str, prefix: str) -> bool:
    """A profiled training job this pipeline started (tuning trials never match)."""
    return re.fullmatch(rf"{re.escape(prefix)}{TRAINING_INFIX}[0-9a-f]{{{_HASH_CHARS}}}", name) is not None


def is_pipeline_features_job(name: str, prefix: str) -> bool:
    """A features job this pipeline started."""
    return re.fullmatch(rf"{re.escape(prefix)}{FEATURES_INFIX}[0-9a-f]{{{_HASH_CHARS}}}", name) is not None
