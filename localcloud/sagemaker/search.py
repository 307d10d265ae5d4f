"""Hyperparameter search: the checks of a tuning request, the search strategies, the median rule.

Strategies: Random (seeded ``random.Random``), Bayesian (Optuna's TPE sampler through ask/tell,
seeded), Grid (every combination of the categorical ranges, as SageMaker's Grid allows only those).
Hyperband is refused. ``median_rule_stops`` is SageMaker's median stopping rule (see tuning.py).
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import optuna

from localcloud.sagemaker.exceptions import ValidationException

optuna.logging.set_verbosity(optuna.logging.WARNING)

EARLY_STOPPING_MIN_TRIALS = 3  # finished trials needed before the median rule stops anything
# "Auto" scaling: SageMaker picks a scale itself; we pick logarithmic when the range spans at least
# two orders of magnitude over positive values, linear otherwise.
AUTO_LOG_RATIO = 100.0


def objective_of(final_metrics: list[dict[str, Any]], metric_name: str) -> float | None:
    for metric in final_metrics:
        if metric["MetricName"] == metric_name:
            value = float(metric["Value"])
            return value if math.isfinite(value) else None
    return None


def _number(value: str, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as error:
        raise ValidationException(f"{what} must be a number, got {value!r}.") from error


def _scale(parameter: dict[str, Any], low: float, high: float) -> str:
    scaling = parameter.get("ScalingType", "Auto")
    if scaling == "Auto":
        return "Logarithmic" if low > 0 and high / low >= AUTO_LOG_RATIO else "Linear"
    return str(scaling)


def _range_names(ranges: dict[str, Any]) -> list[str]:
    """The tuned hyperparameters' names, once each range passed SageMaker's checks."""
    names: list[str] = []
    for parameter in ranges.get("ContinuousParameterRanges", []) + ranges.get("IntegerParameterRanges", []):
        low = _number(parameter["MinValue"], f"MinValue of {parameter['Name']}")
        high = _number(parameter["MaxValue"], f"MaxValue of {parameter['Name']}")
        if low > high:
            raise ValidationException(
                f"MinValue must be less than or equal to MaxValue for {parameter['Name']}."
            )
        scaling = parameter.get("ScalingType", "Auto")
        if scaling == "Logarithmic" and low <= 0:
            raise ValidationException(f"Logarithmic scaling for {parameter['Name']} needs MinValue > 0.")
        if scaling == "ReverseLogarithmic" and not (low >= 0 and high < 1):
            raise ValidationException(
                f"ReverseLogarithmic scaling for {parameter['Name']} needs 0 <= MinValue and MaxValue < 1."
            )
        names.append(parameter["Name"])
    for parameter in ranges.get("IntegerParameterRanges", []):
        for key in ("MinValue", "MaxValue"):
            if not float(parameter[key]).is_integer():
                raise ValidationException(f"{key} of integer range {parameter['Name']} must be an integer.")
        if parameter.get("ScalingType") == "ReverseLogarithmic":
            raise ValidationException("ReverseLogarithmic scaling is only valid for continuous ranges.")
    for parameter in ranges.get("CategoricalParameterRanges", []):
        if not parameter["Values"]:
            raise ValidationException(f"Categorical range {parameter['Name']} needs at least one value.")
        names.append(parameter["Name"])
    return names


def validate_tuning_config(config: dict[str, Any], definition: dict[str, Any]) -> None:
    """The checks SageMaker makes at CreateHyperParameterTuningJob, as ValidationException."""
    strategy = config["Strategy"]
    if strategy not in ("Random", "Bayesian", "Grid"):
        raise ValidationException(
            f"Strategy {strategy} is not supported by the local emulator (Random, Bayesian, Grid)."
        )
    ranges = config.get("ParameterRanges") or {}
    names = _range_names(ranges)
    if not names:
        raise ValidationException("ParameterRanges must define at least one hyperparameter range.")
    if len(names) != len(set(names)):
        raise ValidationException("A hyperparameter appears in more than one parameter range.")
    static = definition.get("StaticHyperParameters") or {}
    overlap = sorted(set(names) & set(static))
    if overlap:
        raise ValidationException(f"Hyperparameters {overlap} are both tunable and static.")
    if strategy == "Grid":
        if ranges.get("ContinuousParameterRanges") or ranges.get("IntegerParameterRanges"):
            raise ValidationException("Grid search supports only CategoricalParameterRanges.")
    elif "MaxNumberOfTrainingJobs" not in config.get("ResourceLimits", {}):
        raise ValidationException(
            f"ResourceLimits.MaxNumberOfTrainingJobs is required for the {strategy} strategy."
        )
    validate_spot(definition)  # (TrainingJobEarlyStoppingType Off/Auto: the request model checks it)
    if trial_resource_config(definition).get("InstanceCount", 1) != 1:
        raise ValidationException(
            "The local emulator runs single-instance training jobs only (InstanceCount 1)."
        )
    if definition["AlgorithmSpecification"].get("TrainingInputMode") == "Pipe":
        raise ValidationException("TrainingInputMode Pipe is not supported by the local emulator.")
    objective = config.get("HyperParameterTuningJobObjective")
    if not objective:
        raise ValidationException("HyperParameterTuningJobObjective is required.")
    metric_names = {d["Name"] for d in definition["AlgorithmSpecification"].get("MetricDefinitions") or []}
    if objective["MetricName"] not in metric_names:
        raise ValidationException(
            f"The objective metric {objective['MetricName']} is not defined in "
            "AlgorithmSpecification.MetricDefinitions."
        )


def trial_resource_config(definition: dict[str, Any]) -> dict[str, Any]:
    """The ResourceConfig each trial runs with: the definition's ``ResourceConfig``, or its
    ``HyperParameterTuningResourceConfig``, which the API accepts in its place (exactly one of the two;
    API_HyperParameterTrainingJobDefinition: "If you specify ResourceConfig, you can't specify
    HyperParameterTuningResourceConfig"). The SageMaker Python SDK v2 sends the latter. With
    ``InstanceConfigs`` (AllocationStrategy Prioritized) the first is the one the emulator's one host is.
    """
    plain = definition.get("ResourceConfig")
    tuning = definition.get("HyperParameterTuningResourceConfig")
    if plain is not None and tuning is not None:
        raise ValidationException(
            "Specify either TrainingJobDefinition.ResourceConfig or "
            "TrainingJobDefinition.HyperParameterTuningResourceConfig, not both."
        )
    if plain is not None:
        return dict(plain)
    if tuning is None:
        raise ValidationException(
            "TrainingJobDefinition.ResourceConfig or "
            "TrainingJobDefinition.HyperParameterTuningResourceConfig is required."
        )
    instance = (tuning.get("InstanceConfigs") or [tuning])[0]
    if "InstanceType" not in instance:
        raise ValidationException("HyperParameterTuningResourceConfig.InstanceType is required.")
    config: dict[str, Any] = {
        "InstanceType": instance["InstanceType"],
        "InstanceCount": instance.get("InstanceCount", 1),
        # ResourceConfig's VolumeSizeInGB is required; without one, the SDK's own default (30 GB).
        "VolumeSizeInGB": instance.get("VolumeSizeInGB", tuning.get("VolumeSizeInGB", 30)),
    }
    if tuning.get("VolumeKmsKeyId"):
        config["VolumeKmsKeyId"] = tuning["VolumeKmsKeyId"]
    return config


def validate_spot(definition: dict[str, Any]) -> None:
    """SageMaker's checks of managed spot settings in a training job (definition)."""
    stopping = definition.get("StoppingCondition") or {}
    max_wait = stopping.get("MaxWaitTimeInSeconds")
    if definition.get("EnableManagedSpotTraining"):
        runtime = stopping.get("MaxRuntimeInSeconds", 86400)
        if max_wait is None or int(max_wait) < int(runtime):
            raise ValidationException(
                "Invalid MaxWaitTimeInSeconds. It must be present and be greater than or equal to "
                "MaxRuntimeInSeconds when EnableManagedSpotTraining is true."
            )
    elif max_wait is not None:
        raise ValidationException("MaxWaitTimeInSeconds is only valid with EnableManagedSpotTraining.")


def median_rule_stops(value: float, step: int, finished: list[list[float]], maximize: bool) -> bool:
    """SageMaker's median stopping rule for one report: ``value`` is a running trial's ``step``-th
    (1-based) objective value, ``finished`` the objective series of the finished trials."""
    averages = [sum(series[:step]) / step for series in finished if len(series) >= step]
    if len(averages) < EARLY_STOPPING_MIN_TRIALS:
        return False
    averages.sort()
    middle = len(averages) // 2
    median = averages[middle] if len(averages) % 2 else (averages[middle - 1] + averages[middle]) / 2
    return value < median if maximize else value > median


class SearchStrategy:
    """suggest() -> (handle, {name: value as string}); report(handle, objective or None)."""

    def suggest(self) -> tuple[Any, dict[str, str]]:
        raise NotImplementedError

    def report(self, handle: Any, objective: float | None) -> None:
        return None

    def capacity(self) -> int | None:
        """How many distinct suggestions exist (Grid), or None for unbounded."""
        return None


class RandomSearch(SearchStrategy):
    def __init__(self, ranges: dict[str, Any], seed: int | None) -> None:
        self.ranges = ranges
        self.rng = random.Random(seed)

    def _continuous(self, low: float, high: float, scaling: str) -> float:
        if scaling == "Logarithmic":
            return math.exp(self.rng.uniform(math.log(low), math.log(high)))
        if scaling == "ReverseLogarithmic":
            # 1 - x is log-uniform: dense sampling close to the upper bound (e.g. momentum near 1).
            return 1.0 - math.exp(self.rng.uniform(math.log(1.0 - high), math.log(1.0 - low)))
        return self.rng.uniform(low, high)

    def suggest(self) -> tuple[Any, dict[str, str]]:
        values: dict[str, str] = {}
        for parameter in self.ranges.get("ContinuousParameterRanges", []):
            low, high = float(parameter["MinValue"]), float(parameter["MaxValue"])
            value = self._continuous(low, high, _scale(parameter, low, high))
            values[parameter["Name"]] = repr(min(max(value, low), high))
        for parameter in self.ranges.get("IntegerParameterRanges", []):
            low, high = int(float(parameter["MinValue"])), int(float(parameter["MaxValue"]))
            if _scale(parameter, low, high) == "Logarithmic":
                # log-uniform over [low, high + 1), floored: each integer gets its log-width share
                value = int(math.exp(self.rng.uniform(math.log(low), math.log(high + 1))))
            else:
                value = self.rng.randint(low, high)
            values[parameter["Name"]] = str(min(max(value, low), high))
        for parameter in self.ranges.get("CategoricalParameterRanges", []):
            values[parameter["Name"]] = self.rng.choice(parameter["Values"])
        return None, values


class BayesianSearch(SearchStrategy):
    """Optuna TPE through ask/tell: trials still running are pending, finished ones inform it."""

    def __init__(self, ranges: dict[str, Any], seed: int | None, direction: str, max_jobs: int) -> None:
        startup = max(2, min(10, max_jobs // 2))
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True)
        self.study = optuna.create_study(
            direction="maximize" if direction == "Maximize" else "minimize", sampler=sampler
        )
        self.distributions: dict[str, optuna.distributions.BaseDistribution] = {}
        self.reverse_log: set[str] = set()
        for parameter in ranges.get("ContinuousParameterRanges", []):
            low, high = float(parameter["MinValue"]), float(parameter["MaxValue"])
            scaling = _scale(parameter, low, high)
            if scaling == "ReverseLogarithmic":
                # Search 1 - x on a log scale, report x.
                self.reverse_log.add(parameter["Name"])
                self.distributions[parameter["Name"]] = optuna.distributions.FloatDistribution(
                    1.0 - high, 1.0 - low, log=True
                )
            else:
                self.distributions[parameter["Name"]] = optuna.distributions.FloatDistribution(
                    low, high, log=scaling == "Logarithmic"
                )
        for parameter in ranges.get("IntegerParameterRanges", []):
            low, high = int(float(parameter["MinValue"])), int(float(parameter["MaxValue"]))
            self.distributions[parameter["Name"]] = optuna.distributions.IntDistribution(
                low, high, log=_scale(parameter, low, high) == "Logarithmic"
            )
        for parameter in ranges.get("CategoricalParameterRanges", []):
            self.distributions[parameter["Name"]] = optuna.distributions.CategoricalDistribution(
                list(parameter["Values"])
            )

    def suggest(self) -> tuple[Any, dict[str, str]]:
        trial = self.study.ask(self.distributions)
        values: dict[str, str] = {}
        for name, value in trial.params.items():
            if name in self.reverse_log:
                values[name] = repr(1.0 - value)
            elif isinstance(value, float):
                values[name] = repr(value)
            else:
                values[name] = str(value)
        return trial, values

    def report(self, handle: Any, objective: float | None) -> None:
        if objective is None:
            self.study.tell(handle, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(handle, objective)


class GridSearch(SearchStrategy):
    def __init__(self, ranges: dict[str, Any]) -> None:
        categorical = ranges.get("CategoricalParameterRanges", [])
        names = [parameter["Name"] for parameter in categorical]
        self.points = [
            dict(zip(names, combo, strict=True))
            for combo in itertools.product(*(p["Values"] for p in categorical))
        ]
        self.next_index = 0

    def suggest(self) -> tuple[Any, dict[str, str]]:
        point = self.points[self.next_index]
        self.next_index += 1
        return None, point

    def capacity(self) -> int | None:
        return len(self.points)


def build_strategy(config: dict[str, Any]) -> SearchStrategy:
    ranges = config.get("ParameterRanges") or {}
    seed = config.get("RandomSeed")
    strategy = config["Strategy"]
    if strategy == "Grid":
        return GridSearch(ranges)
    if strategy == "Bayesian":
        max_jobs = config["ResourceLimits"]["MaxNumberOfTrainingJobs"]
        return BayesianSearch(ranges, seed, config["HyperParameterTuningJobObjective"]["Type"], max_jobs)
    return RandomSearch(ranges, seed)
